"""Which past frames SAM 2 reads from its memory bank while tracking (pure functions).

The bank (`output_dict`) holds per-frame outputs under `cond_frame_outputs` (frames with prompts)
and `non_cond_frame_outputs` (frames tracked from memory), keyed by frame index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

V = TypeVar("V")


def select_closest_cond_frames(
    frame_idx: int, cond_frame_outputs: Mapping[int, V], max_cond_frame_num: int
) -> tuple[dict[int, V], dict[int, V]]:
    """Keep at most `max_cond_frame_num` prompted frames, the temporally closest to `frame_idx`.

    Always kept: the closest prompted frame before `frame_idx` and the closest at or after it;
    the rest is filled by distance. -1 keeps all.

    Returns:
        (selected, unselected) outputs, keyed by frame index.
    """
    if max_cond_frame_num == -1 or len(cond_frame_outputs) <= max_cond_frame_num:
        return dict(cond_frame_outputs), {}
    if max_cond_frame_num < 2:
        raise ValueError(f"max_cond_frame_num must be -1 or >= 2, got {max_cond_frame_num}")
    selected: dict[int, V] = {}
    before = max((t for t in cond_frame_outputs if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond_frame_outputs[before]
    after = min((t for t in cond_frame_outputs if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond_frame_outputs[after]
    remaining = sorted(
        (t for t in cond_frame_outputs if t not in selected), key=lambda t: abs(t - frame_idx)
    )[: max_cond_frame_num - len(selected)]
    selected.update((t, cond_frame_outputs[t]) for t in remaining)
    unselected = {t: v for t, v in cond_frame_outputs.items() if t not in selected}
    return selected, unselected


def memory_frame_indices(
    frame_idx: int, num_maskmem: int, stride: int, track_in_reverse: bool
) -> list[tuple[int, int]]:
    """(t_pos, frame index) of the non-prompted memory slots t_pos = 1 .. num_maskmem - 1.

    Slot num_maskmem - 1 is the previous frame (in tracking order); the earlier slots step back
    by `stride` frames from the stride-aligned frame before that (SAM 2's `r`, 1 by default).
    """
    slots = []
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos  # frames back from the current one
        if t_rel == 1:
            prev = frame_idx + 1 if track_in_reverse else frame_idx - 1
        elif not track_in_reverse:
            prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
        slots.append((t_pos, prev))
    return slots


def object_pointer_sources(
    frame_idx: int,
    selected_cond: Mapping[int, dict[str, Any]],
    unselected_cond: Mapping[int, dict[str, Any]],
    non_cond: Mapping[int, dict[str, Any]],
    *,
    max_ptrs: int,
    num_frames: int | None,
    track_in_reverse: bool,
    only_past: bool,
    signed: bool,
) -> list[tuple[int, Any]]:
    """(temporal offset, object pointer) pairs the current frame attends to.

    Prompted frames come first (optionally only those not in the future), then up to
    `max_ptrs - 1` tracked frames right before the current one.

    Args:
        max_ptrs: min(num_frames, the model's `max_obj_ptrs_in_encoder`).
        only_past: skip prompted frames after the current one (in tracking order).
        signed: offsets keep their sign (SAM 2.1) rather than being absolute (SAM 2.0).
    """
    sign = -1 if track_in_reverse else 1
    pairs = []
    for t, cond_out in selected_cond.items():
        if only_past and (t < frame_idx if track_in_reverse else t > frame_idx):
            continue
        offset = (frame_idx - t) * sign if signed else abs(frame_idx - t)
        pairs.append((offset, cond_out["obj_ptr"]))
    for t_diff in range(1, max_ptrs):
        t = frame_idx + t_diff if track_in_reverse else frame_idx - t_diff
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        out: dict[str, Any] | None = non_cond.get(t)
        if out is None:
            out = unselected_cond.get(t)
        if out is not None:
            pairs.append((t_diff, out["obj_ptr"]))
    return pairs

"""The video parity cases of SAM 2, shared by the reference generator and the tests.

Frames: the first frames of `../shared/data/video_bedroom` (960x540 JPEGs, tests only: never
copied into the repository), linked into a temporary folder. Prompts in video pixels.

- `forward`: a click (object 1) and a box (object 2) on frame 0, tracked forward (the issue's
  case). CI runs `FORWARD_FRAMES[variant]` frames of the stored `REFERENCE_FRAMES[variant]`.
- `mask_reverse` (tiny): a mask prompt (object 1, an ellipse) and a box (object 2) on the last
  frame of `REVERSE_FRAMES`, tracked backwards to frame 0: `add_new_mask` and `reverse=True`.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

CLICK = ((210.0, 350.0), 1)  # (x, y), label
BOX = (300.0, 0.0, 500.0, 400.0)  # XYXY
# Frames of the stored references (Meta's base+ at 16 frames took too long to generate on the
# shared machine: 4 stored). CI tests the first frames of each case (its time budget: the
# memory path costs seconds per frame and object on a CPU); MASKTRON_SAM2_VIDEO_FULL=1 tests
# every stored frame.
REFERENCE_FRAMES = {"sam2.1_hiera_t": 16, "sam2.1_hiera_b+": 4}
FULL = os.environ.get("MASKTRON_SAM2_VIDEO_FULL", "") not in ("", "0")
FORWARD_FRAMES = REFERENCE_FRAMES if FULL else {"sam2.1_hiera_t": 4, "sam2.1_hiera_b+": 2}
REVERSE_FRAMES = 4  # frames of the folder; the prompt is on the last
REVERSE_TRACKED = REVERSE_FRAMES if FULL else 2  # frames the CI test tracks from there
VARIANTS = ("sam2.1_hiera_t", "sam2.1_hiera_b+")


def reference_path(data_dir: Path, variant: str) -> Path:
    return data_dir / f"video_ref_{variant}.npz"


@functools.cache
def bedroom_frames(shared: Path, count: int) -> str:
    """A temporary folder linking the first `count` bedroom frames (removed at exit)."""
    import atexit

    source = shared / "data" / "video_bedroom"
    names = sorted(n for n in os.listdir(source) if n.endswith(".jpg"))[:count]
    folder = tempfile.mkdtemp(prefix=f"bedroom{count}_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in names:
        try:
            os.symlink(source / name, os.path.join(folder, name))
        except OSError:  # no symlinks (some Windows setups): copy
            shutil.copy(source / name, folder)
    return folder


def ellipse_mask(height: int, width: int) -> np.ndarray:
    """(H, W) bool: the mask prompt of `mask_reverse`, an ellipse left of the box."""
    ys, xs = np.mgrid[0:height, 0:width]
    return ((xs - 180.0) / 120.0) ** 2 + ((ys - 330.0) / 90.0) ** 2 <= 1.0


def run_forward(predictor, folder: str, frames: int) -> tuple[list[int], np.ndarray]:
    """(frame order, (F, 2, H, W) bool masks) of the `forward` case."""
    state = predictor.init_state(folder)
    (x, y), label = CLICK
    predictor.add_new_points_or_box(state, 0, 1, points=[[x, y]], labels=[label])
    predictor.add_new_points_or_box(state, 0, 2, box=list(BOX))
    order, masks = [], []
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(
        state, max_frame_num_to_track=frames - 1
    ):
        assert list(obj_ids) == [1, 2], obj_ids
        order.append(frame_idx)
        masks.append((logits[:, 0] > 0).cpu().numpy())
    return order, np.stack(masks)


def run_mask_reverse(
    predictor, folder: str, frames: int = REVERSE_FRAMES
) -> tuple[list[int], np.ndarray]:
    """(frame order, (F, 2, H, W) bool masks) of the `mask_reverse` case, over its first
    `frames` frames (from the prompted last frame backwards)."""
    state = predictor.init_state(folder)
    last = state["num_frames"] - 1
    mask = ellipse_mask(state["video_height"], state["video_width"])
    predictor.add_new_mask(state, last, 1, mask)
    predictor.add_new_points_or_box(state, last, 2, box=list(BOX))
    order, masks = [], []
    for frame_idx, _, logits in predictor.propagate_in_video(
        state, max_frame_num_to_track=frames - 1, reverse=True
    ):
        order.append(frame_idx)
        masks.append((logits[:, 0] > 0).cpu().numpy())
    return order, np.stack(masks)


def pack(masks: np.ndarray) -> np.ndarray:
    return np.packbits(masks.astype(bool), axis=-1)


def unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks agree (1.0)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)

"""Inputs and cases of the SAM 2 model parity tests, run the same way on Meta's model (to make the
references, `make_reference_model.py`) and on masktron's (the tests): both models have the same
attribute and method names (the contract of masktron.models.sam2.SAM2Base).

Stored outputs are small: strided float16 subsets of feature maps and logits, packed bits of masks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sam2_fixtures_util import SAM2_DATA, SHARED

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Variants with parity references (the issue asks tiny and base+).
REFERENCE_VARIANTS = ("sam2.1_hiera_t", "sam2.1_hiera_b+")


def reference_path(variant: str) -> Path:
    return SAM2_DATA / f"model_ref_{variant.replace('+', 'p')}.npz"


@functools.cache
def input_image(name: str = "astronaut", shift: int = 0) -> torch.Tensor:
    """(1, 3, 1024, 1024) normalised image, optionally rolled right/down by `shift` pixels
    (the frames of the synthetic tracking sequence)."""
    rgb = np.asarray(Image.open(SHARED / "data" / "images" / f"{name}.png").convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(1024, 1024), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return torch.roll(x, shifts=(shift, shift), dims=(2, 3)) if shift else x


def feature_subset(x: torch.Tensor) -> np.ndarray:
    """A strided (B, 16, 16, 16) float16 subset of a (B, C, H, W) map."""
    c, h, w = x.shape[1:]
    sub = x[:, :: max(c // 16, 1), :: max(h // 16, 1), :: max(w // 16, 1)]
    return sub.detach().cpu().numpy().astype(np.float16)


def logit_subset(x: torch.Tensor) -> np.ndarray:
    """Every 4th row and column of (B, M, 256, 256) mask logits, float16."""
    return x[:, :, ::4, ::4].detach().cpu().numpy().astype(np.float16)


def pack(masks: np.ndarray) -> np.ndarray:
    return np.packbits(masks.astype(bool), axis=-1)


def unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1)[..., :width].astype(bool)


# (name, points xy in the 1024 frame, labels, multimask, mask input from the "point" case)
HEAD_CASES: tuple[tuple[str, list[list[float]], list[int], bool, bool], ...] = (
    ("point", [[512.0, 400.0]], [1], True, False),
    ("point_neg", [[300.0, 420.0], [700.0, 600.0]], [1, 0], False, False),
    ("box", [[200.0, 250.0], [820.0, 920.0]], [2, 3], False, False),
    ("box_point", [[200.0, 250.0], [820.0, 920.0], [512.0, 400.0]], [2, 3, 1], True, False),
    ("point_mask", [[512.0, 400.0]], [1], False, True),
)


@torch.no_grad()
def image_outputs(model: Any, backbone_out: dict[str, Any]) -> dict[str, np.ndarray]:
    """Backbone features (`forward_image` output) and SAM-head outputs of every case, as numpy
    arrays keyed by name."""
    out: dict[str, np.ndarray] = {}
    for i, level in enumerate(backbone_out["backbone_fpn"]):
        out[f"fpn{i}"] = feature_subset(level)
    out["pos2"] = feature_subset(backbone_out["vision_pos_enc"][2])
    _, feats, _, sizes = model._prepare_backbone_features(backbone_out)
    # as Meta's image predictor: the no-memory embedding added to the stride-16 features
    pix = (feats[-1] + model.no_mem_embed).permute(1, 2, 0).reshape(1, -1, *sizes[-1])
    high_res = [x.permute(1, 2, 0).reshape(1, -1, *s) for x, s in zip(feats[:-1], sizes[:-1])]
    best_low_res = None
    for name, points, labels, multimask, with_mask in HEAD_CASES:
        point_inputs = {
            "point_coords": torch.tensor([points], dtype=torch.float32),
            "point_labels": torch.tensor([labels], dtype=torch.int32),
        }
        res = model._forward_sam_heads(
            backbone_features=pix,
            point_inputs=point_inputs,
            mask_inputs=best_low_res if with_mask else None,
            high_res_features=high_res,
            multimask_output=multimask,
        )
        low_multi, high_multi, ious, low, _, obj_ptr, obj_score = res
        out[f"{name}/low_res_logits"] = logit_subset(low_multi)
        out[f"{name}/low_res_masks"] = pack(low_multi.numpy() > 0)
        out[f"{name}/ious"] = ious.numpy()
        out[f"{name}/obj_ptr"] = obj_ptr.numpy()
        out[f"{name}/object_score_logits"] = obj_score.numpy()
        if name == "point":
            best_low_res = low
    return out


# Synthetic sequences, frame t being the image rolled by shifts[t] pixels.
# Tiny: a click on frame 0, then frames 1-2 (rolled by 24 pixels: the object moves) tracked from
# memories and object pointers, the last one reading two memories and two pointers.
# base+ (whose memory modules are tiny's: only the trunk differs) covers the other inputs of
# `track_step` on one repeated frame, within the test budget: a mask input on frame 0 (taken as
# the output, `_use_mask_as_output`), then a correction click fed with earlier logits
# (`prev_sam_mask_logits`) on a tracked frame.
TRACK_SHIFTS = {"sam2.1_hiera_t": (0, 24, 24), "sam2.1_hiera_b+": (0, 0)}
TRACK_MASK_PROMPTS = {"sam2.1_hiera_t": False, "sam2.1_hiera_b+": True}
TRACK_CLICK = [[512.0, 400.0]]
CORRECTION_CLICK = [[500.0, 450.0]]


def _track_prompts(variant_mask: bool, t: int, prev: dict[str, Any] | None) -> dict[str, Any]:
    """point_inputs / mask_inputs / prev_sam_mask_logits of frame t."""

    def points(xy: list[list[float]]) -> dict[str, torch.Tensor]:
        return {
            "point_coords": torch.tensor([xy], dtype=torch.float32),
            "point_labels": torch.tensor([[1]], dtype=torch.int32),
        }

    if not variant_mask:
        return {"point_inputs": points(TRACK_CLICK) if t == 0 else None}
    if t == 0:
        mask = torch.zeros(1, 1, 1024, 1024, dtype=torch.bool)
        mask[:, :, 300:600, 400:700] = True
        return {"point_inputs": None, "mask_inputs": mask}
    assert prev is not None
    return {"point_inputs": points(CORRECTION_CLICK), "prev_sam_mask_logits": prev["pred_masks"]}


@torch.no_grad()
def track_outputs(
    model: Any, shifts: tuple[int, ...], backbone: Any = None, mask_prompts: bool = False
) -> dict[str, np.ndarray]:
    """`track_step` over a synthetic sequence; per frame the masks, scores and memories.

    `backbone(shift)` may supply (cached) `forward_image` outputs of the frames;
    `mask_prompts` selects base+'s prompts (a mask, then a correction click) over tiny's click.
    """
    if backbone is None:
        backbone = lambda shift: model.forward_image(input_image(shift=shift))  # noqa: E731
    out: dict[str, np.ndarray] = {}
    output_dict: dict[str, dict[int, Any]] = {
        "cond_frame_outputs": {},
        "non_cond_frame_outputs": {},
    }
    num_frames = len(shifts)
    for t in range(num_frames):
        backbone_out = backbone(shifts[t])
        _, feats, pos, sizes = model._prepare_backbone_features(backbone_out)
        prompts = _track_prompts(
            mask_prompts,
            t,
            output_dict["non_cond_frame_outputs"].get(
                t - 1, output_dict["cond_frame_outputs"].get(t - 1)
            ),
        )
        current = model.track_step(
            frame_idx=t,
            is_init_cond_frame=t == 0,
            current_vision_feats=feats,
            current_vision_pos_embeds=pos,
            feat_sizes=sizes,
            point_inputs=prompts["point_inputs"],
            mask_inputs=prompts.get("mask_inputs"),
            output_dict=output_dict,
            num_frames=num_frames,
            prev_sam_mask_logits=prompts.get("prev_sam_mask_logits"),
        )
        bank = "cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"
        output_dict[bank][t] = current
        out[f"t{t}/pred_masks"] = logit_subset(current["pred_masks"])
        out[f"t{t}/masks"] = pack(current["pred_masks"].numpy() > 0)
        out[f"t{t}/obj_ptr"] = current["obj_ptr"].numpy()
        out[f"t{t}/object_score_logits"] = current["object_score_logits"].numpy()
        out[f"t{t}/maskmem_features"] = feature_subset(current["maskmem_features"])
        if t == 0:  # the same sine codes on every frame
            out["t0/maskmem_pos_enc"] = feature_subset(current["maskmem_pos_enc"][-1])
    return out

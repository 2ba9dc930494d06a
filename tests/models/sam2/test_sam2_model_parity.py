"""masktron's SAM 2 (tiny, base+) loaded from a Meta-format fixture checkpoint matches Meta's
outputs stored in `data/model_ref_*.npz` (made by `make_reference_model.py`).

Checked: the FPN features and position codes of `forward_image`, the SAM-head outputs of five
prompt cases (`_forward_sam_heads`: point with multi-mask, point + negative and box with the
dynamic single-mask fallback, box + point, point + mask input), and `track_step` over short
synthetic sequences (tiny: a click on frame 0, then two frames tracked from memories and object
pointers; base+: a mask input taken as output, then a correction click with earlier logits).
References are float16 subsets, so values are compared at half precision; masks by IoU >= 0.99.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sam2_fixtures_util import SHARED, sam2_fixture_checkpoint
from sam2_model_cases import (
    HEAD_CASES,
    REFERENCE_VARIANTS,
    TRACK_MASK_PROMPTS,
    TRACK_SHIFTS,
    image_outputs,
    input_image,
    reference_path,
    track_outputs,
    unpack,
)

from masktron.models.sam2 import SAM2Base, build_sam2_video_model

VARIANTS = [
    pytest.param(v, marks=[pytest.mark.slow] if v.endswith("b+") else [])
    for v in REFERENCE_VARIANTS
]


def _require_data() -> None:
    if not (SHARED / "data" / "images" / "astronaut.png").is_file():
        pytest.skip(f"shared images not found under {SHARED} (set MASKTRON_SHARED)")


@functools.cache
def _model(variant: str) -> SAM2Base:
    return build_sam2_video_model(ckpt_path=sam2_fixture_checkpoint(variant))


@functools.cache
def _backbone(variant: str, shift: int) -> dict:
    with torch.no_grad():
        return _model(variant).forward_image(input_image(shift=shift))


@functools.cache
def _reference(variant: str) -> dict[str, np.ndarray]:
    with np.load(reference_path(variant)) as data:
        return {k: data[k] for k in data.files}


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _check_half(ours: np.ndarray, ref: np.ndarray, key: str, atol: float) -> None:
    assert ours.shape == ref.shape, key
    np.testing.assert_allclose(
        ours.astype(np.float32), ref.astype(np.float32), rtol=2e-3, atol=atol, err_msg=key
    )


def _check_masks(ours: np.ndarray, ref: np.ndarray, key: str) -> None:
    a, b = unpack(ours, 256), unpack(ref, 256)
    assert a.shape == b.shape, key
    for i in range(a.shape[1]):
        assert b[0, i].any() and not b[0, i].all(), f"{key}: degenerate reference mask"
        assert _mask_iou(a[0, i], b[0, i]) >= 0.99, key


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_path_matches_meta(variant):
    _require_data()
    ours = image_outputs(_model(variant), _backbone(variant, 0))
    ref = _reference(variant)
    for level in ("fpn0", "fpn1", "fpn2", "pos2"):
        _check_half(ours[level], ref[level], f"{variant}/{level}", atol=2e-3)
    for name, *_ in HEAD_CASES:
        key = f"{variant}/{name}"
        _check_masks(ours[f"{name}/low_res_masks"], ref[f"{name}/low_res_masks"], key)
        _check_half(ours[f"{name}/low_res_logits"], ref[f"{name}/low_res_logits"], key, 2e-2)
        np.testing.assert_allclose(ours[f"{name}/ious"], ref[f"{name}/ious"], atol=2e-3)
        np.testing.assert_allclose(ours[f"{name}/obj_ptr"], ref[f"{name}/obj_ptr"], atol=1e-3)
        np.testing.assert_allclose(
            ours[f"{name}/object_score_logits"], ref[f"{name}/object_score_logits"], atol=1e-3
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_track_step_matches_meta(variant):
    _require_data()
    model = _model(variant)
    shifts = TRACK_SHIFTS[variant]
    ours = track_outputs(
        model,
        shifts,
        backbone=lambda shift: _backbone(variant, shift),
        mask_prompts=TRACK_MASK_PROMPTS[variant],
    )
    ref = _reference(variant)
    for t in range(len(shifts)):
        key = f"{variant}/t{t}"
        _check_masks(ours[f"t{t}/masks"], ref[f"t{t}/masks"], key)
        _check_half(ours[f"t{t}/pred_masks"], ref[f"t{t}/pred_masks"], key, 2e-2)
        for name in ("obj_ptr", "object_score_logits"):
            np.testing.assert_allclose(ours[f"t{t}/{name}"], ref[f"t{t}/{name}"], atol=1e-3)
        _check_half(ours[f"t{t}/maskmem_features"], ref[f"t{t}/maskmem_features"], key, 1e-2)
    _check_half(ours["t0/maskmem_pos_enc"], ref["t0/maskmem_pos_enc"], variant, 2e-3)
    # the tracked frames really used the memory: their object scores differ from frame 0's
    assert ours["t1/object_score_logits"] != ours["t0/object_score_logits"]

"""Helpers of SAM 2's image tests: masktron's models on the fixture checkpoints, Meta's stored
outputs (`models/sam2/data/sam2_image_reference.npz`, made by
`models/sam2/make_reference_image.py`), photos and prompts.

Hiera-T encodes a 1024 x 1024 input in ~1.7 s on an idle 2-core CPU (base+ ~3x): models and
predictors (with an embedding cache) are built once per session and shared by the test files.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from fixtures_util_sam import pairwise_mask_iou
from PIL import Image
from sam2_fixtures_util import SAM2_DATA, SHARED, sam2_fixture_checkpoint
from scipy.optimize import linear_sum_assignment

from masktron.predictors.sam2_image import SAM2ImagePredictor

TINY, BASE_PLUS = "sam2.1_hiera_t", "sam2.1_hiera_b+"
PROMPT_CASES = ("point1", "point2neg", "box", "box_point", "point_mask")


@functools.cache
def fixture_sam2(variant: str) -> torch.nn.Module:
    """masktron's image model, variant read from the fixture checkpoint by `build_sam2`."""
    from masktron.models.sam2 import build_sam2

    return build_sam2(None, sam2_fixture_checkpoint(variant), device="cpu")


@functools.cache
def fixture_predictor(variant: str) -> SAM2ImagePredictor:
    """A predictor of the fixture model that keeps the embeddings of recent images."""
    return SAM2ImagePredictor(fixture_sam2(variant), cache_size=4)


@functools.cache
def reference() -> dict[str, np.ndarray]:
    with np.load(SAM2_DATA / "sam2_image_reference.npz") as data:
        return {k: data[k] for k in data.files}


def unpack_masks(key: str) -> np.ndarray:
    """(N, H, W) bool masks stored as `<key>/masks_packed` + `<key>/masks_shape`."""
    ref = reference()
    shape = tuple(int(s) for s in ref[f"{key}/masks_shape"])
    bits = np.unpackbits(ref[f"{key}/masks_packed"], axis=-1)[..., : shape[-1]]
    return bits.astype(bool).reshape(shape)


def load_rgb(name: str) -> np.ndarray:
    """A photo of ../shared/data/images as (H, W, 3) uint8 RGB."""
    path = SHARED / "data" / "images" / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"{path} not found (set MASKTRON_SHARED)")
    return np.asarray(Image.open(path).convert("RGB"))


def check_same_masks(records, key):
    """Meta's set of masks (IoU >= 0.98, one to one, any order); matched records agree."""
    ref = unpack_masks(key)
    ours = np.stack([r["segmentation"] for r in records]) if records else ref[:0]
    assert ours.shape == ref.shape
    iou = pairwise_mask_iou(ref, ours)
    rows, cols = linear_sum_assignment(-iou)
    assert iou[rows, cols].min() >= 0.98
    exp, pick = reference(), [records[j] for j in cols]

    def field(name):
        return np.array([r[name] for r in pick], dtype=np.float64)

    np.testing.assert_allclose(field("predicted_iou"), exp[f"{key}/predicted_iou"][rows], atol=2e-3)
    stability = exp[f"{key}/stability_score"][rows]
    np.testing.assert_allclose(field("stability_score"), stability, atol=1e-2)
    np.testing.assert_allclose(field("bbox"), exp[f"{key}/bbox"][rows], atol=1)
    np.testing.assert_allclose(field("crop_box"), exp[f"{key}/crop_box"][rows])
    np.testing.assert_allclose(field("area"), exp[f"{key}/area"][rows], rtol=0.01)
    points = np.array([r["point_coords"][0] for r in pick])
    np.testing.assert_allclose(points, exp[f"{key}/point_coords"][rows], atol=1e-4)

"""Helpers of SAM's tests: fixture weights, photos, expected outputs, a tiny random SAM.

The ViT-B encoder takes seconds per image on a CPU, so the fixture model and a predictor that
caches embeddings are built once per test session (module-level caches) and shared.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masktron.models.sam import Sam, build_sam_model, sam_model_registry
from masktron.predictors.sam_predictor import SamPredictor

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKTRON_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
IMAGES = SHARED / "data" / "images"
PROMPT_CASES = ("point1", "point2neg", "box", "box_point", "point_mask")


def require_shared() -> None:
    if not (FIXTURES / "sam_vit_b.s0.expected.npz").is_file():
        pytest.skip(f"SAM fixtures not found under {FIXTURES} (set MASKTRON_SHARED)")


@functools.cache
def _tmpdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="masktron_sam_tests_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def fixture_checkpoint() -> Path:
    """`fixture_weights(shapes, 0)` over the official ViT-B keys, saved as Meta's flat `.pth`."""
    require_shared()
    spec = importlib.util.spec_from_file_location(
        "fixture_weights", FIXTURES / "fixture_weights.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shapes_npz = np.load(FIXTURES / "sam_vit_b.shapes.npz")
    shapes = {k: tuple(int(s) for s in shapes_npz[k]) for k in shapes_npz.files}
    weights = module.fixture_weights(shapes, 0)
    path = _tmpdir() / "sam_vit_b_fixture.pth"
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, path)
    return path


@functools.cache
def fixture_sam() -> Sam:
    """ViT-B loaded from the fixture checkpoint through the public registry."""
    model = sam_model_registry["vit_b"](checkpoint=fixture_checkpoint())
    # full float32 on CUDA as well (no TF32): the references were computed that way
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return model.to(os.environ.get("MASKTRON_TEST_DEVICE", "cpu"))


@functools.cache
def fixture_predictor() -> SamPredictor:
    """A predictor of the fixture model that keeps the embeddings of recent images."""
    return SamPredictor(fixture_sam(), cache_size=8)


@functools.cache
def expected() -> dict[str, np.ndarray]:
    require_shared()
    with np.load(FIXTURES / "sam_vit_b.s0.expected.npz") as data:
        return {k: data[k] for k in data.files}


def load_rgb(name: str) -> np.ndarray:
    """A photo of ../shared/data/images as (H, W, 3) uint8 RGB (alpha dropped)."""
    require_shared()
    return np.asarray(Image.open(IMAGES / f"{name}.png").convert("RGB"))


def unpack_masks(key: str) -> np.ndarray:
    """(N, H, W) bool masks stored as `<key>/masks_packed` + `<key>/masks_shape`."""
    exp = expected()
    shape = exp[f"{key}/masks_shape"]
    return np.unpackbits(exp[f"{key}/masks_packed"], axis=-1)[..., : shape[2]].astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def pairwise_mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, H, W) x (M, H, W) bool -> (N, M) IoU."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1)


def prompt_kwargs(case: str, width: int, height: int) -> dict[str, np.ndarray]:
    """The fixture's prompts in original pixels (../shared/fixtures/README.md); `point_mask`'s
    mask input is added by the caller."""
    point1 = {
        "point_coords": np.array([[0.5 * width, 0.5 * height]]),
        "point_labels": np.array([1]),
    }
    box = np.array([0.2 * width, 0.25 * height, 0.8 * width, 0.9 * height])
    cases = {
        "point1": point1,
        "point_mask": point1,
        "point2neg": {
            "point_coords": np.array([[0.3 * width, 0.4 * height], [0.7 * width, 0.6 * height]]),
            "point_labels": np.array([1, 0]),
        },
        "box": {"box": box},
        "box_point": {"box": box, **point1},
    }
    return dict(cases[case])


def tiny_sam(seed: int = 0) -> Sam:
    """A small random SAM (2-block, 32-wide encoder; SAM's real decoder): fast plumbing tests."""
    torch.manual_seed(seed)
    return build_sam_model(
        encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,)
    )

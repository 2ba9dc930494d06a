"""Helpers for the visualization tests (a uniquely named module: every test folder has its own
conftest, so `from conftest import ...` would pick whichever was imported first).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# `../shared/data` beside the repository, or `$MASKTRON_SHARED/data` (as tests/data uses).
_REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = str(Path(os.environ.get("MASKTRON_SHARED", _REPO.parent / "shared")) / "data")


def load_photo(name: str) -> np.ndarray:
    """An image of `shared/data/images` as (H, W, 3) uint8 RGB; skips the test when absent."""
    path = os.path.join(SHARED_DATA, "images", name)
    if not os.path.exists(path):
        pytest.skip(f"shared test image {path} is not available (set MASKTRON_SHARED)")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def box_mask(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) bool, True on [x0, x1) x [y0, y1)."""
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def unblend(out: np.ndarray, img: np.ndarray, alpha: float) -> np.ndarray:
    """The colour that, blended at `alpha` over `img`, gives `out`: (..., 3) float."""
    return (out.astype(np.float64) - (1 - alpha) * img.astype(np.float64)) / alpha


def region_color(out: np.ndarray, img: np.ndarray, alpha: float, box) -> np.ndarray:
    """Median recovered colour over the pixels of `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return np.median(unblend(out[y0:y1, x0:x1], img[y0:y1, x0:x1], alpha).reshape(-1, 3), axis=0)


def shrink(mask: np.ndarray, px: int) -> np.ndarray:
    """Pixels of `mask` whose 4 neighbours `px` away are in it too (keeps off outlines)."""
    out = mask.copy()
    for axis in (0, 1):
        for shift in (-px, px):
            out &= np.roll(mask, shift, axis=axis)
    return out

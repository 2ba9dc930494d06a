"""Shared pieces for the visualization tests: a real photo, metadata and mask makers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from masktron.data.catalog import Metadata

# The shared data folder sits beside the repository (../shared/data); an env var can move it.
SHARED_DATA = os.environ.get(
    "MASKTRON_SHARED_DATA",
    os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")),
)
IMAGES = os.path.join(SHARED_DATA, "images")


def load_photo(name: str) -> np.ndarray:
    path = os.path.join(IMAGES, name)
    if not os.path.exists(path):
        pytest.skip(f"shared test image {path} is not available")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB."""
    return load_photo("astronaut.png")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """(400, 600, 3) uint8 RGB."""
    return load_photo("coffee.png")


@pytest.fixture()
def metadata() -> Metadata:
    return Metadata(
        name="vis-test",
        thing_classes=["person", "cat", "dog"],
        thing_colors=[[220, 20, 60], [20, 200, 20], [0, 0, 142]],
        stuff_classes=["sky", "grass", "road"],
        stuff_colors=[[70, 130, 180], [152, 251, 152], [128, 64, 128]],
    )


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

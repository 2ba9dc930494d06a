"""Fixtures for the visualization tests: real photos and a small metadata."""

from __future__ import annotations

import numpy as np
import pytest
from _vis_helpers import load_photo

from masktron.data.catalog import Metadata


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

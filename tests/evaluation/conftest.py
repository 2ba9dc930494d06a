"""Fixtures of the evaluation tests: where the real COCO and panoptic samples are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")
)


@pytest.fixture(scope="session")
def coco_sample() -> Path:
    """`../shared/data/coco_sample` (real COCO annotations with crowd regions; tests only)."""
    path = SHARED / "data" / "coco_sample"
    if not (path / "annotations").is_dir():
        pytest.skip(f"COCO sample not found at {path} (set MASKTRON_SHARED)")
    return path


@pytest.fixture(scope="session")
def panoptic_sample() -> Path:
    """`../shared/data/panoptic_sample/sample_data` (panopticapi's 2 images; tests only)."""
    path = SHARED / "data" / "panoptic_sample" / "sample_data"
    if not path.is_dir():
        pytest.skip(f"panoptic sample not found at {path} (set MASKTRON_SHARED)")
    return path

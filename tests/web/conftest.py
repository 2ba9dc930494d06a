"""Fixtures of the web tests: a few real photos copied to a temporary folder, a tiny random SAM
saved as a checkpoint, a tiny Mask R-CNN config with random weights, and the server's app."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "engine"))
from engine_helpers import tiny_cfg  # noqa: E402
from fixtures_util_sam import IMAGES, tiny_sam  # noqa: E402

# Photos that may ship (scikit-image samples): the screenshots of docs/web.md show them.
PHOTOS = ("chelsea.png", "coffee.png", "coins.png")


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A fresh folder with three photos of ../shared/data/images (coins.png is greyscale)."""
    if not IMAGES.is_dir():
        pytest.skip(f"shared images not found at {IMAGES}")
    folder = tmp_path / "images"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(IMAGES / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def sam_checkpoint(tmp_path_factory) -> Path:
    """A tiny random SAM (seed 0) saved as a flat state dict, as Meta's checkpoints are."""
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(tiny_sam(0).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def detector_files(tmp_path_factory) -> tuple[Path, Path]:
    """(config, weights) of a tiny Mask R-CNN with seeded random weights."""
    from masktron.modeling import build_model

    folder = tmp_path_factory.mktemp("detector")
    cfg = tiny_cfg(folder / "out")
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    config = folder / "tiny.yaml"
    config.write_text(cfg.dump())
    torch.manual_seed(0)
    weights = folder / "tiny.pth"
    torch.save({"model": build_model(cfg).state_dict()}, weights)
    return config, weights

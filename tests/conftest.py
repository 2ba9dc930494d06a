"""Shared test fixtures: where `../shared` (fixtures and real data) is, and its weight rules."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKTRON_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set MASKTRON_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def fixture_weights_module(shared_dir: Path) -> ModuleType:
    """`../shared/fixtures/fixture_weights.py`, imported from where it lies (not copied)."""
    path = shared_dir / "fixtures" / "fixture_weights.py"
    spec = importlib.util.spec_from_file_location("fixture_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def zoo_pkl(shared_dir: Path, fixture_weights_module: ModuleType, tmp_path_factory):
    """`zoo_pkl(name)`: a fixture's calibrated weights (e.g. "panoptic_fpn_R_50_3x") written
    as a Detectron2 model-zoo pickle, once per session."""
    import pickle

    cache: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in cache:
            calib = shared_dir / "fixtures" / f"{name}.s0.calib.npz"
            weights = fixture_weights_module.calibrated_weights(None, str(calib))
            path = tmp_path_factory.mktemp("zoo") / f"{name}.pkl"
            with open(path, "wb") as f:  # the model-zoo file format, as Detectron2 writes it
                meta = {"__author__": "Detectron2 Model Zoo", "matching_heuristics": False}
                pickle.dump({"model": weights, **meta}, f)
            cache[name] = path
        return cache[name]

    return make


@pytest.fixture(scope="session")
def mask_rcnn_zoo_pkl(zoo_pkl) -> Path:
    """The R50-FPN 3x Mask R-CNN fixture weights as a Detectron2 model-zoo pickle."""
    return zoo_pkl("mask_rcnn_R_50_FPN_3x")

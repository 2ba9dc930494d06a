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

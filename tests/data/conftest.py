"""Fixtures for data tests: the shared real data folder and small synthetic images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def _shared_data() -> Path:
    root = Path(os.environ.get("MASKTRON_SHARED", _REPO.parent / "shared"))
    return root / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (or `$MASKTRON_SHARED/data`): real datasets, read-only."""
    path = _shared_data()
    if not (path / "coco_sample").is_dir():
        pytest.skip(f"shared data not found at {path} (set MASKTRON_SHARED)")
    return path


@pytest.fixture
def fresh_name(request: pytest.FixtureRequest):
    """A dataset name unique to the test, removed from both catalogs afterwards."""
    from masktron.data import DatasetCatalog, MetadataCatalog

    names: list[str] = []

    def make(suffix: str = "") -> str:
        name = f"test_{request.node.name}_{len(names)}{suffix}"
        names.append(name)
        return name

    yield make
    for catalog in (DatasetCatalog, MetadataCatalog):
        for key in [k for k in catalog if any(k.startswith(n) for n in names)]:
            catalog.remove(key)


@pytest.fixture
def coco_train(shared_data: Path, fresh_name) -> tuple[str, dict]:
    """coco_sample's train split registered under a fresh name, and its raw JSON."""
    from masktron.data import register_coco_instances

    json_file = shared_data / "coco_sample/annotations/instances_train2017.json"
    name = fresh_name()
    register_coco_instances(name, {}, json_file, shared_data / "coco_sample/images/train2017")
    return name, json.loads(json_file.read_text())

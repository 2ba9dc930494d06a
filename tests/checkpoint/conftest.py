"""Fixtures for checkpoint tests; every test runs offline with its own cache folder."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from typing import Any

import pytest
from ckpt_helpers import load_d2_shapes, py2_pickle_bytes


@pytest.fixture(scope="session")
def d2_shapes() -> dict[str, tuple[int, ...]]:
    """The 307 names and shapes of Detectron2's mask_rcnn_R_50_FPN_3x checkpoint."""
    return load_d2_shapes()


@pytest.fixture(scope="session")
def small_d2_shapes(d2_shapes) -> dict[str, tuple[int, ...]]:
    """The same names with every dimension cut to at most 3 (fast; names are what matter)."""
    return {k: tuple(min(d, 3) for d in s) for k, s in d2_shapes.items()}


@pytest.fixture
def write_py2_pickle() -> Callable[[str, Any], str]:
    def write(path: str, obj: Any) -> str:
        with open(path, "wb") as f:
            f.write(py2_pickle_bytes(obj))
        return path

    return write


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """No test may reach the network: downloads fail unless a test installs a fake opener."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr("masktron.checkpoint.download.urlopen", refuse)
    monkeypatch.setenv("MASKTRON_CACHE", str(tmp_path / "cache"))

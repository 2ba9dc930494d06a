"""Which engine evaluates COCO-style AP: hotcoco (default) or pycocotools.

hotcoco (PyPI `hotcoco`, MIT, a Rust wheel that needs only numpy) runs the COCO, LVIS and
panoptic protocols and equals pycocotools figure for figure at a tenth of its time; pycocotools
stays available as the reference (`MASKTRON_COCO_ENGINE=pycocotools`, or `backend=` in the
functions that take one) and is the fallback when hotcoco is not installed. Both share one API
(`COCO`, `loadRes`, `COCOeval`), so one code path drives either.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from collections.abc import Iterator
from typing import Any

ENGINES = ("hotcoco", "pycocotools")
ENGINE_ENV = "MASKTRON_COCO_ENGINE"
_INSTALL = "pip install hotcoco"

hotcoco: Any
try:
    import hotcoco as _hotcoco

    hotcoco = _hotcoco
except ImportError:  # pragma: no cover - hotcoco is a dependency; this is a broken install
    hotcoco = None
    warnings.warn(
        "masktron.evaluation: the package 'hotcoco' is not installed, so COCO AP falls back to "
        f"pycocotools (about 10x slower) and LVIS and panoptic evaluation are unavailable; "
        f"{_INSTALL}",
        RuntimeWarning,
        stacklevel=2,
    )


def require_hotcoco(what: str) -> Any:
    """The hotcoco module, or an ImportError saying that `what` needs it."""
    if hotcoco is None:
        raise ImportError(f"{what} needs the package 'hotcoco' ({_INSTALL})")
    return hotcoco


def resolve_engine(engine: str | None = None) -> str:
    """The engine to use: `engine` if given, else $MASKTRON_COCO_ENGINE, else hotcoco when
    installed, else pycocotools.

    Raises:
        ValueError: an unknown engine name. ImportError: hotcoco asked for but not installed.
    """
    source = "backend"
    if engine is None and os.environ.get(ENGINE_ENV):
        engine, source = os.environ[ENGINE_ENV], f"${ENGINE_ENV}"
    if engine is None:
        return "hotcoco" if hotcoco is not None else "pycocotools"
    if engine not in ENGINES:
        raise ValueError(
            f"unknown COCO evaluation engine {engine!r} (from {source}); "
            f"choose one of {', '.join(ENGINES)}"
        )
    if engine == "hotcoco":
        require_hotcoco(f"COCO evaluation with {source}={engine!r}")
    return engine


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (restored on exit).

    Checking a COCO-scale file builds hundreds of thousands of short-lived lists and tuples, and
    every so many allocations the collector walks all live objects, the parsed JSON included:
    a pass costs up to a second at COCO scale. The checks make no reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

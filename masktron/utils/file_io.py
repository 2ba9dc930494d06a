"""Shared file helpers (Detectron2 keeps these in `detectron2.utils.file_io`).

Atomic file writes: a reader sees the old file or the complete new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from masktron.utils.path_manager import PathHandler, PathManager

__all__ = ["PathHandler", "PathManager", "atomic_open", "json_safe", "write_json"]


def _default_mode() -> int:
    # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success move it over `path` in one step.

    The temporary file lives in the same folder (so `os.replace` is a rename on one file system),
    is flushed and fsynced before the rename, and is deleted if the block raises, leaving any
    previous `path` untouched.

    Args:
        path: the file to write; its folder is created if needed.
        mode: "wb" or "w" (text, UTF-8).

    Yields:
        The open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def json_safe(value: Any) -> Any:
    """`value` with dict keys as strings and NaN floats as None, so strict JSON can hold it."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_json(path: str | os.PathLike, value: Any, indent: int | None = None) -> None:
    """Write `json_safe(value)` to `path` atomically."""
    with atomic_open(path, "w") as f:
        json.dump(json_safe(value), f, indent=indent)

"""`PathManager`: Detectron2's file-system facade (iopath's API) over local files and URLs.

Detectron2 code opens files through `PathManager.open(path)` so that URLs work as well as local
paths. Here URLs (`https://`, `detectron2://`, `masktron://`, `file://`) are downloaded into the
masktron cache by `masktron.checkpoint.get_local_path`; everything else is the local disk.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import IO, Any

__all__ = ["PathHandler", "PathManager", "PathManagerBase"]


class PathHandler:
    """Base of user path handlers (`PathManager.register_handler`): map a prefix to local paths.

    Subclasses set `PREFIX` and implement `_get_local_path(path)`.
    """

    PREFIX = ""

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        raise NotImplementedError


class PathManagerBase:
    """Open, list and test paths; URL prefixes resolve to cached local files."""

    def __init__(self) -> None:
        self._handlers: dict[str, PathHandler] = {}

    def register_handler(self, handler: PathHandler, allow_override: bool = False) -> None:
        """Route paths that start with `handler.PREFIX` to `handler._get_local_path`."""
        if handler.PREFIX in self._handlers and not allow_override:
            raise KeyError(f"a handler for {handler.PREFIX!r} is already registered")
        self._handlers[handler.PREFIX] = handler

    def get_local_path(self, path: str, **kwargs: Any) -> str:
        """A local file for `path`: downloaded (and cached) for URLs, `path` itself otherwise."""
        path = os.fspath(path)
        for prefix in sorted(self._handlers, key=len, reverse=True):
            if path.startswith(prefix):
                return self._handlers[prefix]._get_local_path(path, **kwargs)
        if "://" in path:
            from masktron.checkpoint.download import get_local_path

            return get_local_path(path)
        return os.path.expanduser(path)

    def open(self, path: str, mode: str = "r", **kwargs: Any) -> IO[Any]:
        """`open()` on the local file; writing to a URL is refused."""
        if "://" in os.fspath(path) and any(c in mode for c in "wax+"):
            raise ValueError(f"cannot open {path!r} for writing: it is a URL")
        local = path if any(c in mode for c in "wax+") else self.get_local_path(path)
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        return open(local, mode, **kwargs)

    def exists(self, path: str) -> bool:
        return os.path.exists(self.get_local_path(path)) if "://" not in path else True

    def isfile(self, path: str) -> bool:
        return os.path.isfile(os.path.expanduser(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(os.path.expanduser(path))

    def ls(self, path: str) -> list[str]:
        return os.listdir(os.path.expanduser(path))

    def mkdirs(self, path: str) -> None:
        os.makedirs(os.path.expanduser(path), exist_ok=True)

    def rm(self, path: str) -> None:
        os.remove(os.path.expanduser(path))

    def copy(self, src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if os.path.exists(dst_path) and not overwrite:
            return False
        shutil.copyfile(self.get_local_path(src_path), dst_path)
        return True

    def glob(self, pattern: str) -> list[str]:
        return glob.glob(os.path.expanduser(pattern))


PathManager = PathManagerBase()

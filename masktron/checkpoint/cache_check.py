"""Checking cached downloads on every use, and moving a damaged one aside.

A file in the cache was verified when it was downloaded, but disks, copies by hand and interrupted
tools can change it later; one flipped byte in a weights file changes detections silently. So a
cache hit is verified again against the checksum its name carries (see `download`). Hashing a
large file on every run would cost seconds, so a verified file is remembered by its size and
modification time in a small sidecar (`.<name>.verified`); a changed file is hashed again.

A file that fails (its checksum, or a loader finding it truncated) is renamed to
`<name>.corrupt` with a warning naming both paths, so the next use downloads it afresh instead of
failing on the same bytes forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os

from masktron.utils.file_io import atomic_open

__all__ = ["file_digests", "move_aside", "remember_verified", "verify_cached"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _sidecar(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.verified")


def _stamp(path: str, checks: list[tuple[str, str]]) -> dict:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "checks": [list(c) for c in checks]}


def file_digests(path: str, algorithms: set[str]) -> dict[str, str]:
    """Hex digests of a file for each named hash algorithm, read once in 1 MiB chunks."""
    # md5 here is a file checksum, not security: allowed on FIPS systems too.
    hashes = {a: hashlib.new(a, usedforsecurity=False) for a in sorted(algorithms)}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def move_aside(path: str, reason: str) -> str:
    """Rename a damaged cached file to `<path>.corrupt` and warn; returns the new path."""
    aside = path + ".corrupt"
    os.replace(path, aside)
    with contextlib.suppress(OSError):
        os.remove(_sidecar(path))
    logger.warning("%s: %s; moved it to %s so that it is downloaded again", path, reason, aside)
    return aside


def verify_cached(path: str, checks: list[tuple[str, str]]) -> str | None:
    """Check a cached file against (hash name, expected digest or prefix) pairs.

    Args:
        path: the cached file.
        checks: from `download.expected_digests`; empty means nothing to check.

    Returns:
        None if the file passes (or there is nothing to check); else why it failed. A failing file
        is left in place: the caller moves it aside with `move_aside`.
    """
    if not checks:
        return None
    stamp = _stamp(path, checks)
    with contextlib.suppress(OSError, ValueError):
        with open(_sidecar(path), encoding="utf-8") as f:
            if json.load(f) == stamp:
                return None
    digests = file_digests(path, {algo for algo, _ in checks})
    for algo, expected in checks:
        if not digests[algo].startswith(expected):
            return f"its {algo} is {digests[algo]}, but its name or caller expects {expected}"
    remember_verified(path, checks)
    return None


def remember_verified(path: str, checks: list[tuple[str, str]]) -> None:
    """Record that `path`, as it is now, passed `checks` (a read-only cache just skips this)."""
    if checks:
        with contextlib.suppress(OSError):
            with atomic_open(_sidecar(path), "w") as f:
                json.dump(_stamp(path, checks), f)

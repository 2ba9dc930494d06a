"""Rate-limited logging (Detectron2's `log_first_n`, `log_every_n`, `log_every_n_seconds`).

Each call site (or message, with `key="message"`) keeps a counter or a timestamp, so a warning
inside a training loop is printed once, every n-th time, or at most every n seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import Any

__all__ = ["log_every_n", "log_every_n_seconds", "log_first_n"]

_COUNTS: Counter = Counter()
_LAST_TIME: dict[Any, float] = {}


def _caller(depth: int = 3) -> tuple[str, tuple[str, int, str]]:
    """The calling module's name and its (file, line, function) key."""
    frame = sys._getframe(depth)
    code = frame.f_code
    module = frame.f_globals.get("__name__", "masktron")
    return module, (code.co_filename, frame.f_lineno, code.co_name)


def log_first_n(
    lvl: int, msg: str, n: int = 1, *, name: str | None = None, key: str | tuple = "caller"
) -> None:
    """Log `msg` only the first `n` times this call site (and/or message) is reached.

    Args:
        lvl: a logging level.
        name: the logger's name (default: the caller's module).
        key: "caller", "message", or both as a tuple: what counts as the same log.
    """
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not set(keys) <= {"caller", "message"}:
        raise ValueError(f"key must be 'caller' and/or 'message', got {key!r}")
    module, caller = _caller()
    hash_key: tuple = ()
    if "caller" in keys:
        hash_key += caller
    if "message" in keys:
        hash_key += (msg,)
    _COUNTS[hash_key] += 1
    if _COUNTS[hash_key] <= n:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None) -> None:
    """Log `msg` the 1st, (n+1)-th, (2n+1)-th ... time this call site is reached."""
    module, caller = _caller()
    _COUNTS[caller] += 1
    if n == 1 or _COUNTS[caller] % n == 1:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n_seconds(lvl: int, msg: str, n: float = 1, *, name: str | None = None) -> None:
    """Log `msg` at most once every `n` seconds from this call site."""
    module, caller = _caller()
    last = _LAST_TIME.get(caller)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name or module).log(lvl, msg)
        _LAST_TIME[caller] = now

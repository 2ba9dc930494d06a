"""Shared checks for dataset readers: errors that name the file, the record and the field."""

from __future__ import annotations

import json
import math
import os
from typing import Any

__all__ = ["DatasetFormatError", "as_number_list", "read_json", "require"]


class DatasetFormatError(ValueError):
    """An annotation file that does not follow its format; the message says where and what."""


def read_json(path: str | os.PathLike, what: str = "annotation file") -> Any:
    """Parse a JSON file; a missing file or bad JSON raises an error naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    except UnicodeDecodeError as e:
        raise DatasetFormatError(f"{path}: not a UTF-8 text file ({e})") from e


def require(record: Any, field: str, where: str, types: type | tuple[type, ...] = object) -> Any:
    """`record[field]`, checked to exist and to have one of `types`.

    Args:
        where: the file and record, e.g. "train.json: images[3] (id 17)", for the message.
    """
    if not isinstance(record, dict):
        raise DatasetFormatError(f"{where}: expected an object, got {type(record).__name__}")
    if field not in record:
        raise DatasetFormatError(f"{where}: missing field {field!r}")
    value = record[field]
    bool_ok = any(t in (bool, object) for t in _tuple(types))
    if not isinstance(value, types) or (isinstance(value, bool) and not bool_ok):
        names = "/".join(t.__name__ for t in _tuple(types))
        raise DatasetFormatError(
            f"{where}: field {field!r} should be {names}, got {type(value).__name__} {value!r:.80}"
        )
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def as_number_list(value: Any, where: str, field: str, length: int | None = None) -> list[float]:
    """A list of finite numbers (of `length`, if given), else an error naming the field."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or (length is not None and len(value) != length):
        size = f"{length} " if length is not None else ""
        raise DatasetFormatError(
            f"{where}: field {field!r} should be a list of {size}finite numbers, got {value!r:.80}"
        )
    return [float(v) for v in value]

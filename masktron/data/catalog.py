"""`DatasetCatalog` and `MetadataCatalog`: Detectron2's global name -> dataset/metadata tables.

A dataset is registered as a function returning a list of dataset dicts (Detectron2's standard
format: `file_name`, `height`, `width`, `image_id`, `annotations` with XYWH/XYXY `bbox`,
`bbox_mode`, `category_id` contiguous from 0, `segmentation`, `iscrowd`). Metadata is a free-form
attribute bag per name (`thing_classes`, `thing_colors`, `thing_dataset_id_to_contiguous_id`,
`json_file`, `image_root`, `evaluator_type`, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class _DatasetCatalog(dict):
    """name -> function that returns the list of dataset dicts (called on every `get`)."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError(
                f"DatasetCatalog.register({name!r}, ...): expected a function, got {func!r}"
            )
        if name in self:
            raise ValueError(
                f"dataset {name!r} is already registered (DatasetCatalog.remove it first)"
            )
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        if name not in self:
            raise KeyError(_unknown("dataset", name, self.keys()))
        dicts = self[name]()
        # A list of dicts, or (as Detectron2 allows) any other dataset, e.g. an iterable one.
        if dicts is None or isinstance(dicts, (dict, str, bytes)):
            raise TypeError(
                f"dataset {name!r}: its function must return a list of dicts (or a dataset), "
                f"got {type(dicts).__name__}"
            )
        return dicts

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"


class Metadata:
    """An attribute bag; a value, once set, can only be set again to the same value."""

    def __init__(self, name: str = "", **kwargs: Any):
        object.__setattr__(self, "name", name)
        self.set(**kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise AttributeError(
            f"metadata of {self.name!r} has no field {key!r}; it has: {', '.join(self.as_dict())}"
        )

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.__dict__ and self.__dict__[key] != value:
            raise AssertionError(
                f"metadata field {key!r} of {self.name!r} cannot change from "
                f"{self.__dict__[key]!r} to {value!r}"
            )
        object.__setattr__(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def set(self, **kwargs: Any) -> Metadata:
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def __repr__(self) -> str:
        return f"Metadata({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


class _MetadataCatalog(dict):
    """name -> `Metadata`; `get` creates an empty one on first use, as Detectron2 does."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        if name not in self:
            self[name] = Metadata(name=name)
        return self[name]

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)


def _unknown(kind: str, name: str, known: Any) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    return f"{kind} {name!r} is not registered{hint} (registered: {', '.join(known) or 'none'})"


DatasetCatalog = _DatasetCatalog()
MetadataCatalog = _MetadataCatalog()

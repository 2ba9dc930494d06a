"""Detectron2's `Registry` (from fvcore) and `locate`: name -> class tables for user plug-ins.

masktron builds its own models with explicit `build_*` functions; registries exist so that a
Detectron2 project's parts (`@ROI_HEADS_REGISTRY.register() class MyHeads(...)`) plug in by the
name its config gives (see `masktron.models.registry` for the rule).
"""

from __future__ import annotations

import importlib
import pydoc
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Registry", "locate"]


class Registry:
    """A named table of classes or functions, filled by `register`.

    Args:
        name: what the table holds, used in messages ("ROI_HEADS").
    """

    def __init__(self, name: str):
        self._name = name
        self._obj_map: dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(f"an object named {name!r} is already registered in {self._name!r}")
        self._obj_map[name] = obj

    def register(self, obj: Any = None) -> Any:
        """Register `obj` under its `__name__`; without `obj`, a decorator that does so."""
        if obj is None:

            def decorator(item: Any) -> Any:
                self._do_register(item.__name__, item)
                return item

            return decorator
        self._do_register(obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        """The object registered as `name`.

        Raises:
            KeyError: naming the registry and the registered names.
        """
        if name not in self._obj_map:
            raise KeyError(
                f"no object named {name!r} in the {self._name} registry "
                f"(registered: {sorted(self._obj_map)})"
            )
        return self._obj_map[name]

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self._obj_map.items())

    def __len__(self) -> int:
        return len(self._obj_map)

    def __repr__(self) -> str:
        names = ", ".join(sorted(self._obj_map))
        return f"Registry of {self._name}: [{names}]"


def _qualified_name(obj: Callable[..., Any] | type) -> str:
    """`module.QualName` of an object, shortened to a public module that still exports it
    (`masktron.structures.boxes.Boxes` -> `masktron.structures.Boxes`)."""
    module, qualname = obj.__module__, obj.__qualname__
    parts = module.split(".")
    for k in range(1, len(parts)):
        prefix = ".".join(parts[:k])
        try:
            if locate(f"{prefix}.{qualname}") is obj:
                return f"{prefix}.{qualname}"
        except ImportError:
            continue
    return f"{module}.{qualname}"


def locate(name: str) -> Any:
    """The object at a dotted path (`"masktron.structures.Boxes"`, `"torch.nn.Conv2d"`).

    Raises:
        ImportError: no module or attribute has that path.
    """
    obj = pydoc.locate(name)
    if obj is not None:
        return obj
    # pydoc misses attributes of objects that are not modules; walk the path ourselves.
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for attr in parts[k:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise ImportError(f"cannot locate {name!r}")


_convert_target_to_string = _qualified_name

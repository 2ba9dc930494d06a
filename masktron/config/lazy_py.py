"""`LazyConfig.to_py`: a config written as Python assignments (Detectron2's contract).

Every leaf of the config becomes one statement under `prefix` (`cfg.train.max_iter = 184375`);
a `LazyCall` node becomes a call of its target's dotted name with its arguments sorted by name
(`cfg.model = masktron.models.rcnn.GeneralizedRCNN(backbone=..., ...)`); dicts inside calls are
dict literals; interpolations are resolved. Classes and functions given as values are written
as their dotted names, dataclass nodes (e.g. `ShapeSpec`) as calls of the dataclass. The result
is formatted with `black` when it is installed (as Detectron2 does), else one statement per line.

The code is meant to be read (what a run used), but it also runs: executed with `cfg` an object
whose attributes can be set at any depth and the targets' top-level packages imported, it makes
the objects `instantiate(cfg)` makes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, SCMode

from masktron.utils.registry import _convert_target_to_string

__all__ = ["config_to_py"]


def _dotted(obj: Any) -> str:
    return _convert_target_to_string(obj)


def _literal(value: Any) -> str:
    """Python source of a plain value."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, type) or callable(value):
        return _dotted(value)  # a class or function given as an argument (e.g. stem_class)
    raise ValueError(f"LazyConfig.to_py: cannot write a {type(value).__name__} as Python")


def _expression(obj: Any) -> str:
    """Python source of a value inside a call, a list or a dict."""
    if isinstance(obj, Mapping) and "_target_" in obj:
        target = obj["_target_"]
        name = target if isinstance(target, str) else _dotted(target)
        args = ", ".join(f"{k}={_expression(v)}" for k, v in sorted(obj.items()) if k != "_target_")
        return f"{name}({args})"
    if isinstance(obj, Mapping):
        items = ", ".join(f"{k!r}: {_expression(v)}" for k, v in sorted(obj.items()))
        return "{" + items + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(_expression(x) for x in obj) + "]"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = ", ".join(
            f"{f.name}={_expression(getattr(obj, f.name))}" for f in dataclasses.fields(obj)
        )
        return f"{_dotted(type(obj))}({fields})"
    return _literal(obj)


def _statements(obj: Mapping, prefix: str) -> list[str]:
    """One assignment per leaf (or call) of a top-level mapping, in key order."""
    lines = []
    for key, value in sorted(obj.items()):
        name = f"{prefix}{key}" if str(key).isidentifier() else f"{prefix[:-1]}[{key!r}]"
        if isinstance(value, Mapping) and "_target_" not in value and value:
            lines.extend(_statements(value, name + "."))
        else:
            lines.append(f"{name} = {_expression(value)}")
    return lines


def _format(code: str) -> str:
    try:
        import black
    except ImportError:
        return code
    try:
        return black.format_str(code, mode=black.Mode())
    except black.InvalidInput:  # pragma: no cover  (the code is valid Python by construction)
        return code


def config_to_py(cfg: Any, prefix: str = "cfg.") -> str:
    """The config as Python source (see the module docstring).

    Args:
        cfg: a `DictConfig` (or dict) of a LazyConfig.
        prefix: the name the statements assign under, with its trailing dot.

    Returns:
        Source code, one statement per leaf, ending with a newline.

    Raises:
        ValueError: a value that has no Python literal (an arbitrary object).
    """
    if isinstance(cfg, (DictConfig, ListConfig)):
        data = OmegaConf.to_container(cfg, resolve=True, structured_config_mode=SCMode.INSTANTIATE)
    else:
        data = cfg
    if not isinstance(data, Mapping):
        raise ValueError("LazyConfig.to_py needs a mapping at the top level")
    return _format("\n".join(_statements(data, prefix)) + "\n")

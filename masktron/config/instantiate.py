"""Detectron2's `LazyCall` and `instantiate`: configs that describe calls, made into objects later.

`LazyCall(f)(a=1, b=LazyCall(g)(c=2))` records the call as an OmegaConf `DictConfig` whose
`_target_` is `f` (a callable or its dotted name); `instantiate(cfg)` makes the arguments first
(depth first, resolving `${...}` interpolations), then calls the target. Anything else is
returned as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from masktron.utils.registry import _convert_target_to_string, locate

__all__ = ["LazyCall", "instantiate"]

logger = logging.getLogger(__name__)


class LazyCall:
    """Record a call of `target` instead of making it.

    Args:
        target: a callable, or the dotted name of one ("torch.nn.Conv2d").

    Example:
        >>> conv = LazyCall(torch.nn.Conv2d)(in_channels=3, out_channels=8, kernel_size=3)
        >>> conv.out_channels = 16
        >>> layer = instantiate(conv)
    """

    def __init__(self, target: Any):
        if not (callable(target) or isinstance(target, (str, Mapping))):
            raise TypeError(f"LazyCall needs a callable or its dotted name, got {target!r}")
        self._target = target

    def __call__(self, **kwargs: Any) -> DictConfig:
        if dataclasses.is_dataclass(self._target):
            # OmegaConf turns dataclass *instances* into typed nodes; keep the class itself.
            target: Any = _convert_target_to_string(self._target)  # type: ignore[arg-type]
        else:
            target = self._target
        kwargs["_target_"] = target
        return DictConfig(content=kwargs, flags={"allow_objects": True})


def instantiate(cfg: Any) -> Any:
    """Make the objects a config describes.

    Args:
        cfg: a `LazyCall` config (a mapping with `_target_`), a list or dict holding some, or
            any other value (returned unchanged).

    Returns:
        `target(**arguments)` for a mapping with `_target_` (its arguments instantiated first);
        a dataclass for a node typed by one; a list for a list; other values unchanged.

    Raises:
        TypeError: the target does not accept the arguments (the message names the target).
    """
    if isinstance(cfg, ListConfig):
        items = [instantiate(cfg[i]) for i in range(len(cfg))]
        return ListConfig(items, flags={"allow_objects": True})
    if isinstance(cfg, list):
        return [instantiate(x) for x in cfg]
    if isinstance(cfg, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(cfg)):
        return OmegaConf.to_object(cfg)
    if isinstance(cfg, Mapping) and "_target_" in cfg:
        arguments = {k: instantiate(v) for k, v in cfg.items()}
        target = instantiate(arguments.pop("_target_"))
        if isinstance(target, str):
            name = target
            target = locate(name)
        else:
            name = getattr(target, "__qualname__", repr(target))
        if not callable(target):
            raise TypeError(f"instantiate: _target_ {name!r} is not callable")
        try:
            return target(**arguments)
        except TypeError as e:
            raise TypeError(f"instantiate: calling {name} failed: {e}") from e
    return cfg

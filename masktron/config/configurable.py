"""Detectron2's `@configurable`: build a class or call a function from a config or from arguments.

A decorated `__init__` (or function) is called normally with its own arguments, or with a config
as its first argument (or `cfg=`). In the second case the class's `from_config(cfg, ...)`
classmethod (or the function's `from_config=`) turns the config into keyword arguments; keyword
arguments that `from_config` does not take are passed through to `__init__` and win over the
config's values:

    class Head(nn.Module):
        @configurable
        def __init__(self, *, num_classes: int, dim: int = 256): ...

        @classmethod
        def from_config(cls, cfg, input_shape):
            return {"num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES, "dim": input_shape.channels}

    Head(num_classes=3)                       # plain construction
    Head(cfg, input_shape)                    # from the config
    Head(cfg, input_shape, num_classes=5)     # from the config, one argument overridden

masktron's own modules keep reading no config: their `from_config` calls the family's
`masktron.models.build` helper that the explicit `build_*` functions use too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig

__all__ = ["configurable"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _is_config(value: Any) -> bool:
    from masktron.config.config import CfgNode

    return isinstance(value, (CfgNode, DictConfig))


def _called_with_cfg(args: tuple, kwargs: dict) -> bool:
    """True when the first positional argument, or `cfg=`, is a config."""
    if args and _is_config(args[0]):
        return True
    return _is_config(kwargs.get("cfg"))


def _args_from_config(from_config: Callable[..., dict], args: tuple, kwargs: dict) -> dict:
    """Keyword arguments for the decorated callable: `from_config`'s result, then the caller's
    keyword arguments that `from_config` does not accept."""
    params = inspect.signature(from_config).parameters
    names = list(params)
    if not names or names[0] != "cfg":
        owner = getattr(from_config, "__qualname__", repr(from_config))
        raise TypeError(f"{owner} must take 'cfg' as its first argument")
    takes_any = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    if takes_any:
        return from_config(*args, **kwargs)
    passed_on = {k: kwargs.pop(k) for k in list(kwargs) if k not in params}
    result = dict(from_config(*args, **kwargs))
    result.update(passed_on)
    return result


def configurable(
    init_func: Callable[..., Any] | None = None,
    *,
    from_config: Callable[..., dict] | None = None,
) -> Any:
    """Decorate a class's `__init__` (the class defines `from_config`), or a function given
    `from_config=`, so that it can also be called with a config (see the module docstring).

    Raises:
        AttributeError: the class of a decorated `__init__` has no `from_config`.
        TypeError: `from_config` is not a classmethod, or its first argument is not `cfg`; or
            positional arguments that `from_config` cannot take.
    """
    if init_func is not None:
        if from_config is not None or init_func.__name__ != "__init__":
            raise TypeError(
                "@configurable decorates an __init__ (the class has a from_config classmethod) "
                "or, as @configurable(from_config=fn), a function"
            )

        @functools.wraps(init_func)
        def wrapped_init(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                class_from_config = type(self).from_config
            except AttributeError as e:
                raise AttributeError(
                    f"{type(self).__name__}: a class with @configurable needs a from_config "
                    "classmethod"
                ) from e
            if not inspect.ismethod(class_from_config):
                raise TypeError(
                    f"{type(self).__name__}.from_config must be a classmethod for @configurable"
                )
            if _called_with_cfg(args, kwargs):
                init_func(self, **_args_from_config(class_from_config, args, kwargs))
            else:
                init_func(self, *args, **kwargs)

        return wrapped_init

    if from_config is None:
        return configurable  # `@configurable()` is the same as `@configurable`
    if not inspect.isfunction(from_config):
        raise TypeError("configurable(from_config=...) must be given a function")
    config_reader = from_config

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if _called_with_cfg(args, kwargs):
                return func(**_args_from_config(config_reader, args, kwargs))
            return func(*args, **kwargs)

        wrapped.from_config = config_reader  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate

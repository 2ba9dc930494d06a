"""Refuse, at save time, checkpoint contents that `torch.load(weights_only=True)` would refuse.

A training run that saved a lambda or a custom object inside its scheduler state would otherwise
find out only when it tries to resume. The allowed types are those PyTorch's restricted unpickler
accepts without extra allowlisting.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import torch

__all__ = ["check_weights_only"]

_LEAVES = (
    torch.Tensor,
    torch.Size,
    torch.dtype,
    torch.device,
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    type(None),
)


def check_weights_only(obj: Any, where: str = "checkpoint") -> None:
    """Raise if `obj` holds anything but tensors, numbers, strings and plain containers.

    Args:
        obj: what will be passed to `torch.save`.
        where: the path of `obj` in the checkpoint, used in the error message.

    Raises:
        TypeError: naming the first offending entry, e.g. `checkpoint['scheduler']['fn']`.
    """
    if isinstance(obj, _LEAVES) and (type(obj) in _LEAVES or isinstance(obj, torch.Tensor)):
        return
    if type(obj) in (dict, OrderedDict, Counter):
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise TypeError(f"{where} has a key of type {type(key).__name__}: {key!r}")
            check_weights_only(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, set):
        for i, value in enumerate(obj):
            check_weights_only(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints may hold only "
        "tensors, numbers, strings, None and lists/tuples/sets/dicts of them, so they load with "
        "torch.load(weights_only=True). Store plain values (e.g. its state_dict()) instead."
    )

"""Small tensor helpers Detectron2 code imports from `detectron2.layers.wrappers`.

They exist so ported code runs unchanged: `cat` skips the copy for one tensor, `nonzero_tuple`
is `nonzero(as_tuple=True)` that also works on 0-d tensors, `cross_entropy` returns a zero
loss (with a gradient) on an empty batch instead of NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "BatchNorm2d",
    "ConvTranspose2d",
    "Linear",
    "cat",
    "cross_entropy",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
]

# Detectron2 once wrapped these for empty inputs; current PyTorch handles them, so they are
# PyTorch's own classes and function.
BatchNorm2d = nn.BatchNorm2d
ConvTranspose2d = nn.ConvTranspose2d
Linear = nn.Linear
interpolate = F.interpolate


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """`torch.cat`, returning the tensor itself (no copy) when there is only one."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"cat expects a list or tuple of tensors, got {type(tensors).__name__}")
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def nonzero_tuple(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`x.nonzero(as_tuple=True)`; a 0-d tensor is treated as one element."""
    if x.dim() == 0:
        return x.unsqueeze(0).nonzero().unbind(1)
    return x.nonzero(as_tuple=True)


def shapes_to_tensor(x: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """A list of sizes (ints, or 0-d tensors while tracing) as a 1-D int64 tensor."""
    if all(isinstance(t, torch.Tensor) for t in x):
        return torch.stack([torch.as_tensor(t) for t in x]).to(device=device)
    return torch.as_tensor(list(x), device=device)


def move_device_like(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """`src` on `dst`'s device."""
    return src.to(dst.device)


def empty_input_loss_func_wrapper(loss_func: Callable[..., torch.Tensor]) -> Callable:
    """Wrap a loss with a `reduction` argument so a mean over zero elements is 0, not NaN."""

    @functools.wraps(loss_func)
    def wrapped(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", **kw: Any):
        if target.numel() == 0 and reduction == "mean":
            return input.sum() * 0.0  # keeps the graph, so backward still works
        return loss_func(input, target, reduction=reduction, **kw)

    return wrapped


cross_entropy = empty_input_loss_func_wrapper(F.cross_entropy)

"""In-place activations and reused buffers for SAM's inference on large tensors.

On a CPU, every tensor of more than 32 MiB is a fresh `mmap` from glibc's allocator, returned to
the system when freed: its pages are faulted in and zeroed by the kernel again at each use. SAM's
automatic mask generator makes many such tensors per batch of prompts (each (64, 4096, 256)
float32 image-position tensor of the decoder is 268 MB), and a third of its CPU time went to
those page faults (2 threads, 2026-12-07). The helpers here avoid the avoidable ones with the
same kernels, so results are bit-identical: activations applied in place (`aten::gelu_`,
`relu_`) and buffers reused within one forward pass (`Scratch`, written through `out=`).

In-place forms run only for inference: not when autograd records, nor while tracing, exporting
or compiling (those want the functional graph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def inplace_ok() -> bool:
    """Whether in-place inference forms may replace the functional ones right now."""
    return not (
        torch.is_grad_enabled()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )


def activation_(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`act(x)`, computed in place in `x` when it is exact GELU or ReLU and `inplace_ok()`.

    Args:
        act: the activation module.
        x: a tensor the caller owns (a fresh intermediate), any shape.

    Returns:
        `x` itself (overwritten) or a new tensor from `act(x)`.
    """
    if type(act) is nn.GELU and inplace_ok():
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    if type(act) is nn.ReLU and inplace_ok():
        return torch.relu_(x)
    return act(x)


def linear_into(
    layer: nn.Linear, x: torch.Tensor, scratch: Scratch | None, name: str
) -> torch.Tensor:
    """`layer(x)`, written into `scratch`'s buffer `name` when a scratch is given.

    Same kernel as `F.linear` on a contiguous input with a bias (one `addmm` over the flattened
    leading axes), so the result is bit-identical.

    Args:
        layer: a linear layer.
        x: (..., in_features).
        scratch: the buffers of the current pass, or None for a plain call.
        name: the buffer's name; its contents must be dead before the next `get` of it.

    Returns:
        (..., out_features).
    """
    if scratch is None or layer.bias is None or not x.is_contiguous():
        return layer(x)
    out = scratch.get(name, (*x.shape[:-1], layer.out_features), x)
    flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (N, in), a view
    torch.addmm(layer.bias, flat, layer.weight.t(), out=out.view(-1, layer.out_features))
    return out


# Largest block of a batch processed at once by `batch_blocks`' users (bytes): under glibc's
# 32 MiB mmap threshold, so that each block's intermediates come from the heap, reused (and
# often still in cache), instead of fresh mappings faulted in on every use.
_BLOCK_BYTES = 16 * 2**20


def batch_blocks(batch: int, item_bytes: int) -> list[tuple[int, int]]:
    """(start, end) blocks covering a batch whose items' largest intermediate is `item_bytes`.

    As many items per block as fit in `_BLOCK_BYTES`, at least 2; the whole batch is one
    block when it fits. No item is ever alone in a block of a larger batch (a last single item
    joins the block before it): some kernels take another path for a batch of one (a matrix
    product with one column becomes a matrix-vector product), rounded differently, and results
    must not depend on where a block boundary falls.
    """
    step = max(2, _BLOCK_BYTES // max(1, item_bytes))
    starts = list(range(0, batch, step)) or [0]
    if len(starts) > 1 and batch - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, [*starts[1:], batch]))


def blockwise(
    blocks: Sequence[tuple[int, int]], run: Callable[[int, int], torch.Tensor]
) -> torch.Tensor:
    """The (B, ...) result that `run(start, end)` gives block by block, in one tensor.

    Args:
        blocks: (start, end) pairs covering the batch in order, e.g. from `batch_blocks`.
        run: items start..end of the result, (end - start, ...), each item its own.

    Returns:
        `run(0, B)` itself for a single block, else the blocks' results written into one
        tensor (allocated like the first block's).
    """
    if len(blocks) == 1:
        return run(*blocks[0])
    first = run(*blocks[0])
    out = first.new_empty((blocks[-1][1], *first.shape[1:]))
    out[: len(first)] = first
    for start, end in blocks[1:]:
        out[start:end] = run(start, end)
    return out


def layer_norm_into(
    norm: nn.LayerNorm, x: torch.Tensor, scratch: Scratch | None, name: str
) -> torch.Tensor:
    """`norm(x)`, written into `scratch`'s buffer `name` when a scratch is given.

    A layer norm has no `out=` form: it runs on a few batch items at a time, each block's
    fresh output small enough to come from the heap, and is copied into the buffer (for a
    (64, 4096, 256) float32 input, twice as fast as one 268 MB output faulted in afresh). Each
    row is normalised on its own by the same kernel, so the result is bit-identical.

    Args:
        norm: the layer norm.
        x: (B, ..., C), B > 1 for the buffer to be used.
        scratch: the buffers of the current pass, or None for a plain call.
        name: the buffer's name; its contents must be dead before the next `get` of it.

    Returns:
        (B, ..., C).
    """
    if scratch is None or x.shape[0] == 1:
        return norm(x)
    out = scratch.get(name, x.shape, x)
    for start, end in batch_blocks(x.shape[0], x[0].numel() * x.element_size()):
        out[start:end] = norm(x[start:end])
    return out


class Scratch:
    """Named, uninitialised buffers reused across the steps of one forward pass.

    A buffer is handed out again by a later `get` of the same name, shape, dtype and device, so a
    caller must be done with its contents by then. Create one per forward pass (it holds its
    buffers as long as it lives).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def holds(self, name: str, tensor: torch.Tensor) -> bool:
        """Whether `tensor` is the buffer `name` itself (same memory, shape and strides)."""
        buffer = self._buffers.get(name)
        return (
            buffer is not None
            and tensor.data_ptr() == buffer.data_ptr()
            and tensor.shape == buffer.shape
            and tensor.stride() == buffer.stride()
            and tensor.dtype == buffer.dtype
            and tensor.device == buffer.device
        )

    def get(self, name: str, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised contiguous tensor of `shape` with `like`'s dtype and device."""
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.shape != torch.Size(shape)
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = like.new_empty(tuple(shape))
            self._buffers[name] = buffer
        return buffer

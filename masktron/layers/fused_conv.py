"""Convolution, bias, ReLU (and a residual sum) in one oneDNN call, for CPU inference.

PyTorch's eager `F.relu_(F.conv2d(x, w, b))` makes a second pass over the convolution's output
for the ReLU (and a third for a residual `+`), which on a CPU costs about a tenth of a ResNet's
time: the maps are large and the passes are memory-bound. oneDNN applies such element-wise
steps to each output tile while it is still in cache ("post-ops"). PyTorch exposes that as
`torch.ops.mkldnn._convolution_pointwise`, a plain operator of every CPU build (no compilation;
it is what `torch.compile` emits for the same pattern on CPUs).

The fused call computes the same float32 (or bfloat16) convolution and then the same ReLU and
sum, so its outputs equal the unfused ones bit for bit (checked in
`tests/layers/test_fused_conv.py`). It is used only where it applies: no autograd (inference
mode or `torch.no_grad`), a CPU tensor of float32/bfloat16 matching the weight, zero padding,
oneDNN enabled (`torch.backends.mkldnn.enabled`), and not while tracing or compiling (exports
and `torch.compile` see the plain operators). Everywhere else the unfused operators run.
The operator is private to PyTorch: the first fused call of a process is compared with the plain
operators, and if it fails or differs (another PyTorch version), fusion is switched off with a
warning and the plain operators run from then on.

One exception to "bit for bit", taken only when the caller asks (`round_once=True`, which
`MODEL.PRECISION "bf16"` sets on its converted layers): a bfloat16 convolution with a residual
sum. Unfused, the convolution's output is rounded to bfloat16, summed with the residual, and the
sum rounded again (eager PyTorch's bfloat16 add is also a slow separate pass, 3-4x the fused
call's time on a ResNet block). Fused, oneDNN adds the residual to the float32 accumulator and
rounds once, so some elements differ from the unfused ones by one bfloat16 step (they are the
closer to the exact sum). Its first call is checked against the float32 computation rounded
once instead of against the plain operators.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

_FUSABLE_DTYPES = (torch.float32, torch.bfloat16)


def _pointwise_op() -> object | None:
    """The oneDNN fused operator, or None in a build without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


_OP = _pointwise_op()
_VERIFIED = False  # the first fused result is compared with the plain operators' once
_VERIFIED_ROUND_ONCE = False  # likewise the first low-precision sum rounded once


def can_fuse(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `conv` (with `weight`, e.g. its folded weight) on `x` can run fused."""
    if (
        _OP is None
        or torch.is_grad_enabled()
        or not torch.backends.mkldnn.enabled
        or torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    ):
        return False
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and x.numel() > 0
        and x.dtype in _FUSABLE_DTYPES
        and weight.dtype == x.dtype
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and _eager_uses_onednn(conv, x, weight)
    )


def _eager_uses_onednn(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether eager `F.conv2d` runs this float32 convolution through oneDNN too (PyTorch's
    `use_mkldnn` rule in aten/src/ATen/native/Convolution.cpp). Small single-image maps go
    to its native kernel, whose sums round differently; those stay unfused so the outputs
    stay bit-identical. bfloat16 convolutions always take oneDNN."""
    if x.dtype != torch.float32:
        return True
    kh, kw = weight.shape[-2:]
    strided_or_dilated = any(s != 1 for s in conv.stride) or any(d != 1 for d in conv.dilation)
    if not (
        strided_or_dilated or x.shape[0] >= 16 or (kh, kw) != (1, 1) or torch.get_num_threads() > 1
    ):
        return False
    return conv.groups > 1 or (kh > 3 and kw > 3) or x.shape[0] > 1 or x.numel() > 20480


def conv2d_relu(
    conv: nn.Conv2d,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None = None,
    *,
    round_once: bool = False,
) -> torch.Tensor:
    """`relu(conv2d(x, weight, bias) + residual)` with `conv`'s stride, padding, dilation and
    groups; one oneDNN call where `can_fuse` allows, else the plain operators.

    Args:
        conv: the layer whose geometry is used (its own weight is not read).
        x: (N, C_in, H, W) input.
        weight, bias: (C_out, C_in / groups, kh, kw) and (C_out,) or None.
        residual: optional (N, C_out, H', W') added before the ReLU (a ResNet shortcut).
        round_once: allow a bfloat16 `x` with a `residual` to be fused too, its sum rounded
            once instead of twice (not bit-identical to the plain operators; see the module
            docstring). Float32 results are the plain operators' either way.

    Returns:
        (N, C_out, H', W'), in `x`'s dtype.
    """
    stride, padding, dilation = conv.stride, conv.padding, conv.dilation
    low_sum = residual is not None and x.dtype != torch.float32
    # A float32 sum is fused bit for bit. A bfloat16 one only when asked, and channels-last:
    # otherwise PyTorch's fallback inside the operator (`add_relu`) has no bfloat16 kernel.
    fused_sum = residual is None or (residual.dtype == x.dtype == torch.float32)
    if low_sum and round_once and residual is not None and residual.dtype == x.dtype:
        fused_sum = all(
            t.is_contiguous(memory_format=torch.channels_last) for t in (x, weight, residual)
        )
    if fused_sum and can_fuse(conv, x, weight):
        op: Any = _OP
        try:
            if residual is None:
                out = op(x, weight, bias, padding, stride, dilation, conv.groups, "relu", [], "")
            else:
                out = op.binary(
                    x, residual, weight, bias, padding, stride, dilation, conv.groups,
                    "add", None, "relu", [], "",
                )  # fmt: skip
        except (RuntimeError, TypeError) as e:  # a torch whose private operator differs
            _disable(f"the operator failed ({e})")
        else:
            if low_sum and residual is not None and not _VERIFIED_ROUND_ONCE:
                return _check_round_once(out, conv, (x, weight, bias, residual))
            if low_sum or _VERIFIED:
                return out
            plain = _plain(conv, x, weight, bias, residual)
            if torch.equal(out, plain):
                _verified()
            else:
                _disable("its outputs differ from the plain operators'")
            return plain
    return _plain(conv, x, weight, bias, residual)


def _plain(
    conv: nn.Conv2d,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
) -> torch.Tensor:
    out = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    if residual is not None:
        out = out + residual
    return F.relu_(out)


def _check_round_once(
    out: torch.Tensor,
    conv: nn.Conv2d,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor],
) -> torch.Tensor:
    """`out` if the first low-precision fused sum of this process is the float32 result
    rounded once (within a step of the low dtype, and float32 summation order), else the
    plain operators' result, with fusion switched off.

    Args:
        out: the fused result.
        conv: the layer (its geometry).
        inputs: `x`, `weight`, `bias`, `residual` as given to `conv2d_relu` (bias may be None).
    """
    global _VERIFIED_ROUND_ONCE
    x, weight, bias, residual = inputs
    exact = _plain(conv, x.float(), weight.float(), bias if bias is None else bias.float(),
                   residual.float())  # fmt: skip
    step = torch.finfo(x.dtype).eps  # one step of the low dtype, relative
    tolerance = step * exact.abs() + 1e-3 * exact.abs().max()
    if bool(((out.float() - exact).abs() <= tolerance).all()):
        _VERIFIED_ROUND_ONCE = True
        return out
    _disable("its low-precision sums differ from the float32 ones rounded once")
    return _plain(conv, x, weight, bias, residual)


def _verified() -> None:
    """The first fused call of this process gave the plain operators' bits: trust the rest."""
    global _VERIFIED
    _VERIFIED = True


def _disable(why: str) -> None:
    """Run the plain operators from now on (this torch's fused operator cannot be used)."""
    global _OP
    _OP = None
    logger.warning("oneDNN fused convolution disabled, %s; using the plain operators", why)

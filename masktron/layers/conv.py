"""`Conv2d` with an optional norm and activation, named so Detectron2 checkpoints load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.layers.frozen_bn import FrozenBatchNorm2d
from masktron.layers.fused_conv import conv2d_relu


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` followed by `self.norm` (a submodule, so its weights load as `<name>.norm.*`)
    and `self.activation` (a function, no weights).

    Args:
        *args, **kwargs: as for `nn.Conv2d`.
        norm: a built normalisation module or None.
        activation: e.g. `F.relu`, or None.
    """

    # Set by `MODEL.PRECISION "bf16"` (`masktron.models.precision`): a fused residual sum may
    # round once instead of twice (`masktron.layers.fused_conv.conv2d_relu`). A class default,
    # so layers pickled before it existed read False.
    round_sum_once: bool = False

    def __init__(
        self,
        *args: Any,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor | None, nn.Module | None]:
        """The weight and bias to convolve with, and the norm still to apply after it."""
        weight, bias, norm = self.weight, self.bias, self.norm
        if isinstance(norm, FrozenBatchNorm2d):
            # A frozen norm is an affine map per output channel: fold it into the conv's weight
            # and bias instead of making two more passes over the (large) output.
            scale, shift = norm.scale_and_shift()
            weight = weight * scale.reshape(-1, 1, 1, 1).to(weight.dtype)  # (C,) -> (C, 1, 1, 1)
            bias = shift if bias is None else bias * scale + shift
            bias, norm = bias.to(weight.dtype), None
        return weight, bias, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, norm = self._folded()
        if norm is None and self.activation is F.relu:
            return conv2d_relu(self, x, weight, bias)  # one oneDNN call on CPUs
        x = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if norm is not None:
            x = norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def forward_relu(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`relu_(self(x) + residual)` (`residual` optional): the convolution, its norm, the
        sum and the ReLU in one oneDNN call where the norm folds into the weights and no
        activation of its own follows (`masktron.layers.fused_conv`); same outputs, except
        that with `round_sum_once` a bfloat16 sum is rounded once instead of twice."""
        weight, bias, norm = self._folded()
        if norm is None and self.activation is None:
            return conv2d_relu(self, x, weight, bias, residual, round_once=self.round_sum_once)
        out = self(x)
        return F.relu_(out if residual is None else out + residual)


def _weight_and_bias(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    # torch types `Module.weight` as `Tensor | Module`; a conv or linear layer holds tensors.
    return cast(torch.Tensor, module.weight), cast("torch.Tensor | None", module.bias)


def c2_msra_fill(module: nn.Module) -> None:
    """He (MSRA) normal init with fan_out, zero bias: Caffe2's `MSRAFill`."""
    weight, bias = _weight_and_bias(module)
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    if bias is not None:
        nn.init.constant_(bias, 0)


def c2_xavier_fill(module: nn.Module) -> None:
    """Caffe2's `XavierFill`: uniform with bound sqrt(3 / fan_in), zero bias."""
    weight, bias = _weight_and_bias(module)
    nn.init.kaiming_uniform_(weight, a=1)
    if bias is not None:
        nn.init.constant_(bias, 0)


def conv3x3_norm_relu(
    in_channels: int, out_channels: int, norm: str = "", *, msra_init: bool = True
) -> Conv2d:
    """3x3 conv (padding 1; a bias only without a norm), norm, ReLU, with MSRA init: the
    building block of the R-CNN box/mask heads and the semantic FPN head.

    `msra_init=False` leaves the init to the caller (heads that, as Detectron2's, create all
    their layers before initializing them, so a seed gives Detectron2's weights)."""
    from masktron.layers.frozen_bn import get_norm

    conv = Conv2d(
        in_channels,
        out_channels,
        3,
        padding=1,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=F.relu,
    )
    if msra_init:
        c2_msra_fill(conv)
    return conv

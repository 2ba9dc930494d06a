"""DeepLab's building blocks with Detectron2's signatures: a depthwise-separable convolution and
atrous spatial pyramid pooling (ASPP, Chen et al. 2017, "Rethinking Atrous Convolution")."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from masktron.layers.conv import Conv2d, c2_msra_fill
from masktron.layers.frozen_bn import get_norm

__all__ = ["ASPP", "DepthwiseSeparableConv2d"]

Activation = Callable[[torch.Tensor], torch.Tensor]


def _own(activation: Activation) -> Activation:
    """A copy of a module activation (e.g. `nn.PReLU`, which has weights) so that no two convs
    share its parameters, as Detectron2's ASPP does; functions are shared as they are."""
    return copy.deepcopy(activation) if isinstance(activation, nn.Module) else activation


class DepthwiseSeparableConv2d(nn.Module):
    """A per-channel (depthwise) k x k conv, then a 1 x 1 (pointwise) conv, each with an
    optional norm (by name) and activation.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size, padding, dilation: of the depthwise conv.
        norm1, activation1: after the depthwise conv; norm2, activation2: after the pointwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        *,
        norm1: str | None = None,
        activation1: Activation | None = None,
        norm2: str | None = None,
        activation2: Activation | None = None,
    ):
        super().__init__()
        self.depthwise = Conv2d(
            in_channels,
            in_channels,
            kernel_size=kernel_size,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=not norm1,
            norm=get_norm(norm1 or "", in_channels),
            activation=activation1,
        )
        self.pointwise = Conv2d(
            in_channels,
            out_channels,
            kernel_size=1,
            bias=not norm2,
            norm=get_norm(norm2 or "", out_channels),
            activation=activation2,
        )
        c2_msra_fill(self.depthwise)
        c2_msra_fill(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ASPP(nn.Module):
    """Five parallel branches - a 1 x 1 conv, three dilated 3 x 3 convs and image-level pooling
    - concatenated and projected back to `out_channels`.

    Args:
        in_channels, out_channels: channels in and of every branch and the output.
        dilations: the three atrous rates (e.g. [6, 12, 18]).
        norm: norm name for the convs ("" for none; the pooling branch has none).
        activation: applied after each conv (a module activation is copied for each, so
            branches never share its parameters).
        pool_kernel_size: (h, w) of the pooling branch's average pool (stride 1); None pools
            the whole map.
        dropout: dropout after the projection (training only).
        use_depthwise_separable_conv: dilated branches as `DepthwiseSeparableConv2d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int],
        *,
        norm: str,
        activation: Activation,
        pool_kernel_size: Sequence[int] | None = None,
        dropout: float = 0.0,
        use_depthwise_separable_conv: bool = False,
    ):
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"ASPP expects 3 dilations, got {len(dilations)}")
        self.pool_kernel_size = pool_kernel_size
        self.dropout = dropout
        use_bias = norm == ""
        self.convs = nn.ModuleList()
        self.convs.append(
            Conv2d(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
                activation=_own(activation),
            )
        )
        c2_msra_fill(self.convs[-1])
        for dilation in dilations:
            if use_depthwise_separable_conv:
                self.convs.append(
                    DepthwiseSeparableConv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        norm1=norm,
                        activation1=_own(activation),
                        norm2=norm,
                        activation2=_own(activation),
                    )
                )
            else:
                conv = Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size=3,
                    padding=dilation,
                    dilation=dilation,
                    bias=use_bias,
                    norm=get_norm(norm, out_channels),
                    activation=_own(activation),
                )
                c2_msra_fill(conv)
                self.convs.append(conv)
        pool: nn.Module = (
            nn.AdaptiveAvgPool2d(1)
            if pool_kernel_size is None
            else nn.AvgPool2d(kernel_size=(pool_kernel_size[0], pool_kernel_size[1]), stride=1)
        )
        pool_conv = Conv2d(in_channels, out_channels, 1, bias=True, activation=activation)
        c2_msra_fill(pool_conv)
        self.convs.append(nn.Sequential(pool, pool_conv))
        self.project = Conv2d(
            5 * out_channels,
            out_channels,
            kernel_size=1,
            bias=use_bias,
            norm=get_norm(norm, out_channels),
            activation=_own(activation),
        )
        c2_msra_fill(self.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        size = x.shape[-2:]
        if self.pool_kernel_size is not None and (
            size[0] % self.pool_kernel_size[0] or size[1] % self.pool_kernel_size[1]
        ):
            raise ValueError(
                f"ASPP: input size {tuple(size)} is not divisible by pool_kernel_size "
                f"{tuple(self.pool_kernel_size)}"
            )
        branches = [conv(x) for conv in self.convs]
        # the pooled branch is (N, C, h', w'): back to the input's resolution
        branches[-1] = F.interpolate(branches[-1], size=size, mode="bilinear", align_corners=False)
        out = self.project(torch.cat(branches, dim=1))
        return F.dropout(out, self.dropout, training=self.training) if self.dropout > 0 else out

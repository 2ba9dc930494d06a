"""Feature Pyramid Network (Lin et al., 2017) with Detectron2's module names.

Lateral 1x1 convs and 3x3 output convs per input level (`fpn_lateral{k}`, `fpn_output{k}` with k
= log2(stride)), a nearest-neighbour x2 top-down path, and an optional top block that adds
coarser levels: a stride-2 max-pool of P5 (R-CNN's P6) or two stride-2 convs (RetinaNet's P6, P7).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.backbones.backbone import Backbone
from masktron.layers import Conv2d, c2_xavier_fill, get_norm


class LastLevelMaxPool(nn.Module):
    """P6 = max_pool2d(P5, kernel 1, stride 2): subsampling, used by R-CNN's RPN."""

    num_levels = 1
    in_feature = "p5"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(C5 or P5), P7 = conv3x3/2(relu(P6)): RetinaNet's extra levels.

    Args:
        in_channels: channels of the input level.
        out_channels: FPN channels.
        in_feature: "res5" (Detectron2's RetinaNet: from the backbone's C5) or "p5".
    """

    num_levels = 2

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            c2_xavier_fill(module)
        self.in_feature = in_feature

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(x)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


class FPN(Backbone):
    """Wraps a bottom-up backbone and returns pyramid levels `p{k}` of `out_channels` each.

    Args:
        bottom_up: the backbone (e.g. `ResNet`) whose outputs feed the pyramid.
        in_features: its outputs to use, finest first (e.g. res2..res5).
        out_channels: channels of every pyramid level.
        norm: norm name for lateral/output convs ("" = none, convs get biases).
        top_block: optional module adding coarser levels after the last one.
        fuse_type: "sum" or "avg" of the lateral and top-down paths.
    """

    def __init__(
        self,
        *,
        bottom_up: Backbone,
        in_features: list[str],
        out_channels: int,
        norm: str = "",
        top_block: nn.Module | None = None,
        fuse_type: str = "sum",
    ):
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"FPN fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise ValueError(
                f"FPN inputs {missing} are not outputs of the backbone ({list(shapes)})"
            )
        strides: list[int] = []
        channels: list[int] = []
        for f in in_features:
            stride, in_ch = shapes[f].stride, shapes[f].channels
            if stride is None or in_ch is None:
                raise ValueError(f"FPN input {f!r} needs a stride and channels, got {shapes[f]}")
            strides.append(stride)
            channels.append(in_ch)
        for prev, cur in zip(strides[:-1], strides[1:]):
            if cur != 2 * prev:
                raise ValueError(f"FPN needs strides that double level to level, got {strides}")
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        self._fuse_type = fuse_type
        use_bias = norm == ""
        self.lateral_convs: list[Conv2d] = []
        self.output_convs: list[Conv2d] = []
        for stride, in_ch in zip(strides, channels):
            level = int(math.log2(stride))
            lateral = Conv2d(
                in_ch, out_channels, 1, bias=use_bias, norm=get_norm(norm, out_channels)
            )
            output = Conv2d(
                out_channels,
                out_channels,
                3,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"fpn_lateral{level}", lateral)
            self.add_module(f"fpn_output{level}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)
        # Coarsest first, the order of the top-down pass.
        self.lateral_convs = self.lateral_convs[::-1]
        self.output_convs = self.output_convs[::-1]
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            # A top block declares `num_levels: int` and `in_feature: str` (see LastLevelMaxPool).
            for k in range(1, cast(int, top_block.num_levels) + 1):
                self._out_feature_strides[f"p{last + k}"] = 2 ** (last + k)
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {name: out_channels for name in self._out_features}
        self._size_divisibility = strides[-1]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        bottom_up = self.bottom_up(x)
        inputs = [bottom_up[f] for f in self.in_features[::-1]]  # coarsest first
        prev = self.lateral_convs[0](inputs[0])
        results = [self.output_convs[0](prev)]
        for feature, lateral_conv, output_conv in zip(
            inputs[1:], self.lateral_convs[1:], self.output_convs[1:]
        ):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = lateral_conv(feature) + top_down
            if self._fuse_type == "avg":
                prev = prev / 2
            results.insert(0, output_conv(prev))
        if self.top_block is not None:
            source = cast(str, self.top_block.in_feature)
            if source in bottom_up:
                top_input = bottom_up[source]
            else:
                top_input = results[self._out_features.index(source)]
            results.extend(self.top_block(top_input))
        return dict(zip(self._out_features, results))

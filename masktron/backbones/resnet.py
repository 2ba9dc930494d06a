"""ResNet and ResNeXt (He et al. 2016; Xie et al. 2017) with Detectron2's module names.

Names follow Detectron2 (`stem.conv1`, `res2.0.conv1`, `res2.0.shortcut`, ...) so its checkpoints
load without renaming. Options: `stride_in_1x1` (MSRA weights put the stride on the first 1x1
conv), grouped 3x3 convs (ResNeXt), a dilated res5 (the "DC5" models), freezing early stages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.backbones.backbone import Backbone, stem_then_stages
from masktron.layers import Conv2d, FrozenBatchNorm2d, c2_msra_fill, get_norm

NormFactory = Callable[[int], "nn.Module | None"]


def _norm_factory(norm: str | NormFactory) -> NormFactory:
    """A norm given by name ("BN", "FrozenBN", "GN", "" ...), as Detectron2 takes it, or a
    factory `channels -> module`."""
    if isinstance(norm, str):
        name = norm
        return lambda channels: get_norm(name, channels)
    return norm


# Blocks per stage (res2..res5) for each depth.
DEPTH_TO_BLOCKS = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


class _Block(nn.Module):
    """A module that can be frozen in place (no gradients, BatchNorm -> FrozenBatchNorm2d)."""

    def freeze(self) -> nn.Module:
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class BasicBlock(_Block):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm: str | NormFactory = "BN",
    ):
        super().__init__()
        norm = _norm_factory(norm)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut = (
            Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, norm=norm(out_channels))
            if in_channels != out_channels
            else None
        )
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=1,
            bias=False,
            norm=norm(out_channels),
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False, norm=norm(out_channels)
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1.forward_relu(x)
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return self.conv2.forward_relu(out, shortcut)


class BottleneckBlock(_Block):
    """1x1 reduce, 3x3 (grouped, maybe dilated), 1x1 expand, plus a residual connection.

    Args:
        stride_in_1x1: put the stride on the first 1x1 conv (MSRA/Caffe2 ResNets) instead of
            the 3x3 conv (torchvision and FAIR's ResNeXt).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str | NormFactory = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        super().__init__()
        norm = _norm_factory(norm)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut = (
            Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, norm=norm(out_channels))
            if in_channels != out_channels
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            1,
            stride=stride_1x1,
            bias=False,
            norm=norm(bottleneck_channels),
        )
        self.conv2 = Conv2d(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
            bias=False,
            norm=norm(bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, 1, bias=False, norm=norm(out_channels)
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # relu(conv(x)) and relu(conv(x) + shortcut): one oneDNN call each in CPU inference.
        out = self.conv1.forward_relu(x)
        out = self.conv2.forward_relu(out)
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return self.conv3.forward_relu(out, shortcut)


class BasicStem(_Block):
    """7x7 stride-2 conv, norm, ReLU, then 3x3 stride-2 max-pool: stride 4 overall.

    Defaults are Detectron2's (`BasicStem()` is ResNet's 3 -> 64 channel stem with BatchNorm);
    `norm` is a norm name or a factory `channels -> module`.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 64, norm: str | NormFactory = "BN"
    ):
        super().__init__()
        norm = _norm_factory(norm)
        self.stride = 4
        self.out_channels = out_channels
        self.conv1 = Conv2d(
            in_channels, out_channels, 7, stride=2, padding=3, bias=False, norm=norm(out_channels)
        )
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1.forward_relu(x)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class ResNet(Backbone):
    """A stem followed by stages `res2`..`res5`; returns the stages named in `out_features`.

    As in Detectron2, `stem` and `stages` may be given by position, and stages after the last
    one named in `out_features` are dropped (not built into the module).

    Args:
        stem: the built stem (output stride 4).
        stages: built stages in order; each a list of blocks. Stage i is named `res{i+2}`.
        out_features: names to return, e.g. ["res2", "res3", "res4", "res5"] or ["res4"];
            default (None) the last stage.
        freeze_at: 0 trains everything; 1 freezes the stem; k >= 2 also freezes res2..res{k}.
    """

    def __init__(
        self,
        stem: BasicStem,
        stages: list[list[nn.Module]],
        *,
        out_features: list[str] | None = None,
        freeze_at: int = 0,
    ):
        super().__init__()
        if out_features is None:
            out_features = [f"res{len(stages) + 1}"]
        known = {"stem": 0, **{f"res{i + 2}": i + 1 for i in range(len(stages))}}
        unknown_names = [f for f in out_features if f not in known]
        if unknown_names:
            raise ValueError(f"unknown ResNet outputs {unknown_names}; have {sorted(known)}")
        stages = stages[: max(known[f] for f in out_features)]
        self.stem = stem
        current_stride = 4
        self._out_feature_strides = {"stem": current_stride}
        self._out_feature_channels = {"stem": stem.out_channels}
        self.stage_names: list[str] = []
        for i, blocks in enumerate(stages):
            name = f"res{i + 2}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            # Blocks carry int `stride` and `out_channels` attributes (torch types them loosely).
            for block in blocks:
                current_stride *= cast(int, block.stride)
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = cast(int, blocks[-1].out_channels)
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    @staticmethod
    def make_default_stages(
        depth: int,
        block_class: type[nn.Module] | None = None,
        *,
        norm: str | NormFactory = "BN",
        stride_in_1x1: bool = False,
        num_groups: int = 1,
        dilation: int = 1,
    ) -> list[list[nn.Module]]:
        """The res2..res5 stages of a standard ResNet of `depth` (Detectron2's
        `ResNet.make_default_stages`, as LazyConfigs build backbones).

        Args:
            depth: 18, 34, 50, 101 or 152.
            block_class: `BasicBlock` or `BottleneckBlock`; by default the one of the depth.
            norm, stride_in_1x1, num_groups, dilation: passed to every block (the bottleneck
                width is a quarter of each stage's output, 64 to 512).
        """
        if depth not in DEPTH_TO_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTH_TO_BLOCKS)}, got {depth}")
        bottleneck = (
            block_class or (BasicBlock if depth < 50 else BottleneckBlock)
        ) is not BasicBlock
        outs = [256, 512, 1024, 2048] if bottleneck else [64, 128, 256, 512]
        ins = [64, *outs[:-1]]
        return [
            make_stage(
                num_blocks=n,
                first_stride=1 if i == 0 else 2,
                in_channels=c_in,
                out_channels=c_out,
                bottleneck_channels=c_out // 4,
                num_groups=num_groups,
                norm=_norm_factory(norm),
                stride_in_1x1=stride_in_1x1,
                dilation=dilation,
                bottleneck=bottleneck,
            )
            for i, (n, c_in, c_out) in enumerate(zip(DEPTH_TO_BLOCKS[depth], ins, outs))
        ]

    def freeze(self, freeze_at: int) -> ResNet:
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, name in enumerate(self.stage_names, start=2):
            if freeze_at >= idx:
                for block in getattr(self, name):
                    block.freeze()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return stem_then_stages(self, x, "ResNet")


def make_stage(
    *,
    num_blocks: int,
    first_stride: int,
    in_channels: int,
    out_channels: int,
    bottleneck_channels: int,
    num_groups: int,
    norm: NormFactory,
    stride_in_1x1: bool,
    dilation: int,
    bottleneck: bool = True,
) -> list[nn.Module]:
    """One stage: the first block changes channels and stride, the rest keep them."""
    blocks: list[nn.Module] = []
    for i in range(num_blocks):
        stride = first_stride if i == 0 else 1
        if bottleneck:
            blocks.append(
                BottleneckBlock(
                    in_channels=in_channels,
                    out_channels=out_channels,
                    bottleneck_channels=bottleneck_channels,
                    stride=stride,
                    num_groups=num_groups,
                    norm=norm,
                    stride_in_1x1=stride_in_1x1,
                    dilation=dilation,
                )
            )
        else:
            blocks.append(
                BasicBlock(
                    in_channels=in_channels, out_channels=out_channels, stride=stride, norm=norm
                )
            )
        in_channels = out_channels
    return blocks

"""RegNet (Radosavovic et al. 2020, "Designing Network Design Spaces") with Detectron2's names.

A RegNet is an `AnyNet` whose stage widths and depths come from four numbers: a linear rule
`w_0 + w_a * j` for the width of block j, quantised to powers of `w_m` (section 3.3 of the
paper). Detectron2's new-baseline zoo uses RegNetX-4GF and RegNetY-4GF (X plus squeeze-and-
excitation) from the "dds" runs of pycls. Module names are Detectron2's (`stem.conv`,
`stem.bn`, `s1.b1.proj`, `s1.b1.bn`, `s1.b1.f.a`, `f.a_bn`, `f.b`, `f.b_bn`, `f.se.f_ex.0`,
`f.se.f_ex.2`, `f.c`, `f.c_bn`), so its checkpoints load without renaming. Stages are named
`s1`..`s4` and are the backbone's outputs (strides 4, 8, 16, 32 with `SimpleStem`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from masktron.backbones.backbone import Backbone, stem_then_stages
from masktron.backbones.resnet import NormFactory, _Block, _norm_factory

__all__ = [
    "AnyNet",
    "RegNet",
    "ResBasicBlock",
    "ResBottleneckBlock",
    "ResStem",
    "SimpleStem",
    "VanillaBlock",
    "regnet_widths_and_depths",
]

Activation = Callable[[], nn.Module]


def _conv(
    c_in: int, c_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False
) -> nn.Conv2d:
    """A k x k convolution with "same" padding (k odd)."""
    if k % 2 != 1:
        raise ValueError(f"RegNet convolutions have odd kernels, got {k}")
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=bias)


def _norm(norm: str | NormFactory, channels: int) -> nn.Module:
    layer = _norm_factory(norm)(channels)
    return layer if layer is not None else nn.Identity()


def _init_like_pycls(module: nn.Module) -> None:
    """He-normal convs (fan-out), unit BatchNorm, small Linear: the initialisation of pycls."""
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, mean=0.0, std=float(np.sqrt(2.0 / fan_out)))
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        nn.init.zeros_(module.bias)


class _Sequence(_Block):
    """A freezable block whose forward runs its children in registration order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class SimpleStem(_Sequence):
    """3x3 stride-2 conv, norm, activation: stride 2 (RegNet's ImageNet stem)."""

    def __init__(self, w_in: int, w_out: int, norm: str | NormFactory, activation: Activation):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = w_in, w_out, 2
        self.conv = _conv(w_in, w_out, 3, stride=2)
        self.bn = _norm(norm, w_out)
        self.af = activation()


class ResStem(_Sequence):
    """7x7 stride-2 conv, norm, activation, 3x3 stride-2 max-pool: stride 4 (ResNet's stem)."""

    def __init__(self, w_in: int, w_out: int, norm: str | NormFactory, activation: Activation):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = w_in, w_out, 4
        self.conv = _conv(w_in, w_out, 7, stride=2)
        self.bn = _norm(norm, w_out)
        self.af = activation()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)


class VanillaBlock(_Sequence):
    """Two (3x3 conv, norm, activation) without a residual connection."""

    def __init__(
        self,
        w_in: int,
        w_out: int,
        stride: int,
        norm: str | NormFactory,
        activation: Activation,
        params: dict[str, Any],
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = w_in, w_out, stride
        self.a = _conv(w_in, w_out, 3, stride=stride)
        self.a_bn = _norm(norm, w_out)
        self.a_af = activation()
        self.b = _conv(w_out, w_out, 3)
        self.b_bn = _norm(norm, w_out)
        self.b_af = activation()


class _BasicTransform(_Sequence):
    """3x3 conv, norm, activation, 3x3 conv, norm: the residual branch of `ResBasicBlock`."""

    def __init__(self, w_in: int, w_out: int, stride: int, norm, activation: Activation):
        super().__init__()
        self.a = _conv(w_in, w_out, 3, stride=stride)
        self.a_bn = _norm(norm, w_out)
        self.a_af = activation()
        self.b = _conv(w_out, w_out, 3)
        self.b_bn = _norm(norm, w_out)


class _SqueezeExcite(nn.Module):
    """Channel gates: global average, 1x1 conv, activation, 1x1 conv, sigmoid."""

    def __init__(self, channels: int, squeezed: int, activation: Activation):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.f_ex = nn.Sequential(
            _conv(channels, squeezed, 1, bias=True),
            activation(),
            _conv(squeezed, channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))  # (N, C, H, W) * (N, C, 1, 1)


class _BottleneckTransform(_Sequence):
    """1x1, grouped 3x3 (strided), optional squeeze-excite, 1x1: `ResBottleneckBlock`'s branch.

    The bottleneck width is `w_out * bot_mul`; the SE width is `w_in * se_r` (0: no SE)."""

    def __init__(self, w_in: int, w_out: int, stride: int, norm, activation, params: dict):
        super().__init__()
        w_b = int(round(w_out * params["bot_mul"]))
        w_se = int(round(w_in * params["se_r"]))
        self.a = _conv(w_in, w_b, 1)
        self.a_bn = _norm(norm, w_b)
        self.a_af = activation()
        self.b = _conv(w_b, w_b, 3, stride=stride, groups=w_b // params["group_w"])
        self.b_bn = _norm(norm, w_b)
        self.b_af = activation()
        if w_se:
            self.se = _SqueezeExcite(w_b, w_se, activation)
        self.c = _conv(w_b, w_out, 1)
        self.c_bn = _norm(norm, w_out)


class _Residual(_Block):
    """`activation(shortcut(x) + f(x))`; the shortcut is a strided 1x1 conv + norm (`proj`,
    `bn`) when the shape changes, else the identity."""

    f: nn.Module
    af: nn.Module

    def __init__(self, w_in: int, w_out: int, stride: int, norm, activation: Activation):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = w_in, w_out, stride
        self.proj: nn.Module | None = None
        self.bn: nn.Module | None = None
        if w_in != w_out or stride != 1:
            self.proj = _conv(w_in, w_out, 1, stride=stride)
            self.bn = _norm(norm, w_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.bn(self.proj(x)) if self.proj is not None and self.bn is not None else x
        return self.af(shortcut + self.f(x))


class ResBasicBlock(_Residual):
    """Residual block of two 3x3 convs."""

    def __init__(self, w_in, w_out, stride, norm, activation: Activation, params: dict):
        super().__init__(w_in, w_out, stride, norm, activation)
        self.f = _BasicTransform(w_in, w_out, stride, norm, activation)
        self.af = activation()


class ResBottleneckBlock(_Residual):
    """Residual bottleneck block (RegNetX; RegNetY with `se_r` > 0)."""

    def __init__(self, w_in, w_out, stride, norm, activation: Activation, params: dict):
        super().__init__(w_in, w_out, stride, norm, activation)
        self.f = _BottleneckTransform(w_in, w_out, stride, norm, activation, params)
        self.af = activation()


class _Stage(nn.Module):
    """`depth` blocks `b1`..`bD`; the first changes width and applies the stride."""

    def __init__(self, w_in, w_out, stride, depth, block_class, norm, activation, params):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", block_class(w_in, w_out, stride, norm, activation, params))
            w_in, stride = w_out, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


class AnyNet(Backbone):
    """A stem, then stages `s1`, `s2`, ... of blocks with per-stage depth, width and groups.

    Args:
        stem_class: `stem_class(3, stem_width, norm, activation_class)` builds the stem.
        stem_width: the stem's output channels.
        block_class: `block_class(w_in, w_out, stride, norm, activation_class, params)` builds
            a block; params holds `bot_mul`, `group_w` and `se_r`.
        depths, widths, group_widths, strides, bottleneck_ratios: one entry per stage.
        se_ratio: squeeze-excite width as a fraction of the block's input width (0: none).
        activation_class: a callable returning an activation module.
        freeze_at: 1 freezes the stem, k >= 2 also the first k-1 stages.
        norm: a norm name ("BN", "SyncBN", "FrozenBN", "GN", ...) or a factory.
        out_features: names to return ("stem", "s1", ...); by default the last stage.
    """

    def __init__(
        self,
        *,
        stem_class: Callable[..., nn.Module],
        stem_width: int,
        block_class: Callable[..., nn.Module],
        depths: Sequence[int],
        widths: Sequence[int],
        group_widths: Sequence[int],
        strides: Sequence[int],
        bottleneck_ratios: Sequence[float],
        se_ratio: float,
        activation_class: Activation,
        freeze_at: int = 0,
        norm: str | NormFactory = "BN",
        out_features: Sequence[str] | None = None,
    ):
        super().__init__()
        self.stem = stem_class(3, stem_width, norm, activation_class)
        stride = cast(int, self.stem.stride)  # every stem sets an int `stride`
        self._out_feature_strides = {"stem": stride}
        self._out_feature_channels = {"stem": stem_width}
        self.stage_names: list[str] = []
        w_prev = stem_width
        stages = zip(depths, widths, strides, bottleneck_ratios, group_widths)
        for i, (d, w, s, b, g) in enumerate(stages):
            name = f"s{i + 1}"
            params = {"bot_mul": b, "group_w": g, "se_r": se_ratio}
            self.add_module(
                name, _Stage(w_prev, w, s, d, block_class, norm, activation_class, params)
            )
            self.stage_names.append(name)
            stride *= s
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = w
            w_prev = w
        self.apply(_init_like_pycls)
        out = list(out_features) if out_features is not None else [self.stage_names[-1]]
        unknown = [f for f in out if f not in self._out_feature_strides]
        if unknown:
            raise ValueError(f"unknown RegNet outputs {unknown}; have stem, {self.stage_names}")
        self._out_features = out
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int = 0) -> AnyNet:
        """Freeze the stem (freeze_at >= 1) and stages s1..s{freeze_at-1}: no gradients,
        BatchNorm made FrozenBatchNorm2d."""
        if freeze_at >= 1:
            self.stem.freeze()  # type: ignore[operator]  # every stem here is a _Block
        for idx, name in enumerate(self.stage_names, start=2):
            if freeze_at >= idx:
                for block in getattr(self, name).children():
                    block.freeze()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {name: (N, C, H / stride, W / stride)} for `out_features`."""
        return stem_then_stages(self, x, "RegNet")


def regnet_widths_and_depths(
    w_a: float, w_0: int, w_m: float, depth: int, quantum: int = 8
) -> tuple[list[int], list[int]]:
    """Per-stage widths and depths of a RegNet (the paper's section 3.3).

    Block j gets width `w_0 + w_a * j`, snapped to the nearest `w_0 * w_m ** k` and rounded to
    a multiple of `quantum`; consecutive blocks of one width form a stage.
    """
    if not (w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % quantum == 0):
        raise ValueError(f"invalid RegNet parameters w_a={w_a}, w_0={w_0}, w_m={w_m}")
    linear = np.arange(depth) * w_a + w_0
    exponents = np.round(np.log(linear / w_0) / np.log(w_m))
    per_block = np.round(w_0 * np.power(w_m, exponents) / quantum).astype(int) * quantum
    widths, depths = np.unique(per_block, return_counts=True)
    return [int(w) for w in widths], [int(d) for d in depths]


def _compatible_widths(
    widths: list[int], ratios: list[float], groups: list[int]
) -> tuple[list[int], list[int]]:
    """Widths and group widths adjusted so each bottleneck width divides into whole groups."""
    bottlenecks = [max(1, int(w * b)) for w, b in zip(widths, ratios)]
    groups = [min(g, v) for g, v in zip(groups, bottlenecks)]
    multiples = [int(np.lcm(g, b)) if b > 1 else g for g, b in zip(groups, ratios)]
    bottlenecks = [max(m, int(round(v / m) * m)) for v, m in zip(bottlenecks, multiples)]
    return [int(v / b) for v, b in zip(bottlenecks, ratios)], groups


class RegNet(AnyNet):
    """A RegNet from its design-space parameters (Detectron2's `RegNet` arguments).

    Args:
        depth: total number of blocks.
        w_a, w_0, w_m: the width rule (slope, initial width, quantisation base).
        group_width: channels per group of the 3x3 convs.
        stride: stride of each stage.
        bottleneck_ratio: bottleneck width / block width.
        se_ratio: squeeze-excite ratio (RegNetY: 0.25; RegNetX: 0).
        activation_class: activation factory (default in-place ReLU).
        stem_class, stem_width, block_class, freeze_at, norm, out_features: see `AnyNet`.
    """

    def __init__(
        self,
        *,
        stem_class: Callable[..., nn.Module],
        stem_width: int,
        block_class: Callable[..., nn.Module],
        depth: int,
        w_a: float,
        w_0: int,
        w_m: float,
        group_width: int,
        stride: int = 2,
        bottleneck_ratio: float = 1.0,
        se_ratio: float = 0.0,
        activation_class: Activation | None = None,
        freeze_at: int = 0,
        norm: str | NormFactory = "BN",
        out_features: Sequence[str] | None = None,
    ):
        widths, depths = regnet_widths_and_depths(w_a, w_0, w_m, depth)
        ratios = [bottleneck_ratio] * len(widths)
        widths, groups = _compatible_widths(widths, ratios, [group_width] * len(widths))
        super().__init__(
            stem_class=stem_class,
            stem_width=stem_width,
            block_class=block_class,
            depths=depths,
            widths=widths,
            strides=[stride] * len(widths),
            group_widths=groups,
            bottleneck_ratios=ratios,
            se_ratio=se_ratio,
            activation_class=activation_class or (lambda: nn.ReLU(inplace=True)),
            freeze_at=freeze_at,
            norm=norm,
            out_features=out_features,
        )

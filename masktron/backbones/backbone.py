"""The contract every backbone meets: named feature maps plus their channels and strides."""

from __future__ import annotations

import torch
from torch import nn

from masktron.layers import ShapeSpec


class Backbone(nn.Module):
    """A network whose `forward(x (N, 3, H, W))` returns `{name: (N, C_i, H / s_i, W / s_i)}`.

    Subclasses set `_out_features`, `_out_feature_channels` and `_out_feature_strides`.
    """

    _out_features: list[str]
    _out_feature_channels: dict[str, int]
    _out_feature_strides: dict[str, int]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    @property
    def size_divisibility(self) -> int:
        """Input sizes must be a multiple of this (0: any size)."""
        return 0

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }

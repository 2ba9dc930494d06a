"""The contract every backbone meets: named feature maps plus their channels and strides."""

from __future__ import annotations

from typing import Any

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


def stem_then_stages(backbone: Any, x: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
    """The forward of a stem-and-stages backbone (ResNet, RegNet).

    Runs `backbone.stem`, then each module named in `backbone.stage_names` in order, and keeps
    the outputs named in `backbone._out_features` ("stem" or a stage name).

    Args:
        x: (N, C, H, W) images; any other rank is refused, naming `kind`.

    Returns:
        {name: (N, C_name, H / stride, W / stride)} for each requested output.
    """
    if x.dim() != 4:
        raise ValueError(f"{kind} takes (N, C, H, W) inputs, got {tuple(x.shape)}")
    outputs = {}
    x = backbone.stem(x)
    if "stem" in backbone._out_features:
        outputs["stem"] = x
    for name in backbone.stage_names:
        x = getattr(backbone, name)(x)
        if name in backbone._out_features:
            outputs[name] = x
    return outputs

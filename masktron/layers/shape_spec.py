"""`ShapeSpec`: what a module outputs (channels, stride), so the next module can be built for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeSpec:
    """Shape of a feature map, without the batch and spatial sizes.

    Attributes:
        channels: number of channels.
        height, width: spatial size when fixed (e.g. pooled RoI features), else None.
        stride: input pixels per feature-map cell (4 for P2, 32 for res5), else None.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None

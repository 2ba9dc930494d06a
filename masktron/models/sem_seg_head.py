"""The semantic FPN head of Panoptic FPN (Kirillov et al., 2019): every pyramid level is
convolved and upsampled (x2 per step) down to a common stride, the maps are summed and a 1x1
predictor gives per-class logits, upsampled to the input resolution."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from masktron.config.configurable import configurable
from masktron.layers import Conv2d, ShapeSpec, c2_msra_fill, conv3x3_norm_relu


def sem_seg_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, common_stride: int, ignore_value: int
) -> torch.Tensor:
    """Mean per-pixel cross-entropy at input resolution, pixels labelled `ignore_value` left out.

    Args:
        logits: (N, C, H/s, W/s) at the head's common stride s.
        targets: (N, H, W) int64 class per pixel of the padded input batch.

    Returns:
        a scalar; 0 (connected to the graph) when every pixel is ignored.
    """
    logits = F.interpolate(logits, scale_factor=common_stride, mode="bilinear", align_corners=False)
    if not (targets != ignore_value).any():
        return logits.sum() * 0.0  # cross_entropy's mean over no pixels would be NaN
    return F.cross_entropy(logits, targets, reduction="mean", ignore_index=ignore_value)


class SemSegFPNHead(nn.Module):
    """Per level, `max(1, log2(stride / common_stride))` blocks of 3x3 conv + norm + ReLU, each
    followed by bilinear x2 upsampling while the map is coarser than `common_stride`.

    Submodules are named as in Detectron2's checkpoints: one `nn.Sequential` per input level
    (`p2`, `p3`, ...; convs at even indices, the parameter-free upsampling in between) and a
    1x1 `predictor`.

    Args:
        input_shape: the feature maps to use, by name, with channels and stride.
        num_classes: output classes (Panoptic FPN on COCO: 54, class 0 = all "things").
        conv_dims: width of the hidden convs.
        common_stride: the stride everything is upsampled to (4).
        norm: "GN" (GroupNorm(32)), another norm name, or "" (then the convs have a bias).
        loss_weight: scales `loss_sem_seg`.
        ignore_value: target label without a loss (255).
    """

    @configurable
    def __init__(
        self,
        *,
        input_shape: dict[str, ShapeSpec],
        num_classes: int,
        conv_dims: int,
        common_stride: int,
        norm: str = "GN",
        loss_weight: float = 1.0,
        ignore_value: int = 255,
    ):
        super().__init__()
        levels: list[tuple[str, int, int]] = []  # (name, channels, stride)
        for name, shape in input_shape.items():
            if shape.stride is None or shape.channels is None or shape.stride < common_stride:
                raise ValueError(
                    f"semantic head input {name!r} needs channels and a stride of at least "
                    f"SEM_SEG_HEAD.COMMON_STRIDE={common_stride}, got {shape}"
                )
            levels.append((name, shape.channels, shape.stride))
        levels.sort(key=lambda level: level[2])
        self.in_features = [name for name, _, _ in levels]
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.ignore_value = ignore_value
        for name, channels, stride in levels:
            steps = max(1, int(math.log2(stride) - math.log2(common_stride)))
            layers: list[nn.Module] = []
            for k in range(steps):
                layers.append(conv3x3_norm_relu(channels if k == 0 else conv_dims, conv_dims, norm))
                if stride != common_stride:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*layers))
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1)
        c2_msra_fill(self.predictor)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        """Detectron2's `SemSegFPNHead(cfg, input_shape)`: `MODEL.SEM_SEG_HEAD`'s arguments."""
        from masktron.models.build_dense import sem_seg_head_kwargs

        return sem_seg_head_kwargs(cfg, dict(input_shape))

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the per-level branches, then the predictor: (N, C, H/s, W/s) logits."""
        x = None
        for name in self.in_features:
            y = getattr(self, name)(features[name])
            x = y if x is None else x + y
        return self.predictor(x)

    def forward(
        self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Training: `(None, {"loss_sem_seg": loss})` for (N, H, W) int64 `targets` at the padded
        input size. Inference: `((N, C, H, W) logits at the padded input size, {})`."""
        x = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("the semantic head needs (N, H, W) targets in training mode")
            loss = sem_seg_loss(
                x, targets, common_stride=self.common_stride, ignore_value=self.ignore_value
            )
            return None, {"loss_sem_seg": loss * self.loss_weight}
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return x, {}

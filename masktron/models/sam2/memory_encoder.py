"""SAM 2's memory encoder: a frame's features fused with its predicted mask into a memory.

The mask (image resolution, already squashed to (0, 1) and rescaled) is downsampled 16x by strided
convolutions, added to the projected stride-16 features, mixed by ConvNeXt blocks (Liu et al.,
https://arxiv.org/abs/2201.03545) and projected to the memory width (64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.common import LayerNorm2d
from masktron.models.sam2.image_encoder import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Conv -> LayerNorm2d -> GELU stages, each `stride`x smaller and stride^2 x wider, then 1x1.

    Args:
        embed_dim: output channels (256).
        kernel_size, stride, padding: of each strided convolution (3, 2, 1).
        total_stride: overall downsampling (16).
    """

    def __init__(
        self,
        *,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        num_layers = round(math.log(total_stride, stride))
        if stride**num_layers != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        layers: list[nn.Module] = []
        chans = 1
        for _ in range(num_layers):
            out = chans * stride**2
            layers += [
                nn.Conv2d(chans, out, kernel_size=kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out),
                nn.GELU(),
            ]
            chans = out
        layers.append(nn.Conv2d(chans, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, embed_dim, H/total_stride, W/total_stride)."""
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, LayerNorm, pointwise MLP (as Linear), layer scale, residual.

    Args:
        dim: channels.
        kernel_size, padding: of the depthwise convolution (7, 3).
        layer_scale_init_value: initial layer scale (`gamma`); 0 disables it.
        use_dwconv: depthwise (grouped) rather than dense convolution.
    """

    def __init__(
        self,
        *,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(
            dim, dim, kernel_size=kernel_size, padding=padding, groups=dim if use_dwconv else 1
        )
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            nn.Parameter(layer_scale_init_value * torch.ones(dim))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class Fuser(nn.Module):
    """A stack of `CXBlock`s (no input projection, as in SAM 2)."""

    def __init__(self, *, layers: list[CXBlock]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Encodes (features, mask) into a memory and its position codes.

    Args:
        mask_downsampler: the mask's 16x downsampler.
        fuser: blocks mixing features and mask.
        position_encoding: sine codes of the memory grid (64 channels).
        in_dim: feature channels (256).
        out_dim: memory channels (64).
    """

    def __init__(
        self,
        *,
        mask_downsampler: MaskDownSampler,
        fuser: Fuser,
        position_encoding: PositionEmbeddingSine,
        in_dim: int = 256,
        out_dim: int = 64,
    ) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj: nn.Module = (
            nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()
        )

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Encode one memory per batch entry.

        Args:
            pix_feat: (B, in_dim, h, w) stride-16 features.
            masks: (B, 1, 16h, 16w) mask logits, or probabilities with `skip_mask_sigmoid`.
            skip_mask_sigmoid: the masks are already in (0, 1) (or rescaled by the caller).

        Returns:
            `vision_features` (B, out_dim, h, w) and `vision_pos_enc`, a one-element list of its
            (B, out_dim, h, w) codes.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {"vision_features": x, "vision_pos_enc": [pos]}

"""SAM 2's image encoder: Hiera trunk + FPN neck, and the sine position encodings of feature maps.

The neck projects each trunk stage to 256 channels with a 1x1 convolution (no output convs) and
adds nearest-upsampled top-down features on the chosen levels. The lowest-resolution level is
dropped afterwards ("scalp"): SAM 2 uses strides 4, 8 and 16 of a 1024-pixel input.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam2.hiera import Hiera


def sine_frequencies(num_feats: int, temperature: float, device: torch.device) -> torch.Tensor:
    """(num_feats,) divisors T^(2*floor(i/2)/num_feats) of the sine/cosine channel pairs."""
    index = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)


def get_1d_sine_pe(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Transformer-style sine code of scalar positions: (...,) -> (..., dim), [sin | cos]."""
    angles = positions.unsqueeze(-1) / sine_frequencies(dim // 2, temperature, positions.device)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PositionEmbeddingSine(nn.Module):
    """DETR's 2D sine position encoding of a feature map's grid (normalised to [0, 2*pi]).

    Channels are [y code | x code], each alternating sin/cos over frequencies. The codes depend
    only on the grid size, so they are cached per (h, w, device).

    Args:
        num_pos_feats: output channels (even).
        temperature: frequency base.
    """

    def __init__(self, *, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def _axis_code(self, n: int, device: torch.device) -> torch.Tensor:
        """(n, num_pos_feats / 2) code of positions 1..n normalised by n."""
        pos = torch.arange(1, n + 1, dtype=torch.float32, device=device)
        pos = pos / (pos[-1:] + 1e-6) * self.scale
        angles = pos[:, None] / sine_frequencies(self.num_pos_feats // 2, self.temperature, device)
        # channel 2k: sin of frequency k, channel 2k+1: cos of the same frequency
        # (n, F/2, 2) -> (n, F)
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)

    def grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(num_pos_feats, h, w) code of an (h, w) grid (cached; do not modify)."""
        key = (h, w, device)
        if key not in self._cache:
            y = self._axis_code(h, device)[:, None, :].expand(h, w, -1)  # (h, w, F/2)
            x = self._axis_code(w, device)[None, :, :].expand(h, w, -1)  # (h, w, F/2)
            self._cache[key] = torch.cat([y, x], dim=-1).permute(2, 0, 1).contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) feature map -> (B, num_pos_feats, h, w) codes in its dtype."""
        pe = self.grid(x.shape[-2], x.shape[-1], x.device).to(x.dtype)
        return pe.unsqueeze(0).repeat(x.shape[0], 1, 1, 1)


class FpnNeck(nn.Module):
    """SAM 2's FPN: lateral 1x1 convolutions plus top-down sums on `fpn_top_down_levels`.

    Args:
        position_encoding: codes of the output maps.
        d_model: output channels (256).
        backbone_channel_list: trunk channels, lowest resolution first.
        fpn_top_down_levels: levels (0 = highest resolution) that receive top-down features; the
            others are lateral projections only.
        fpn_interp_model: upsampling mode of the top-down path ("nearest" in SAM 2).
    """

    def __init__(
        self,
        *,
        position_encoding: PositionEmbeddingSine,
        d_model: int,
        backbone_channel_list: Sequence[int],
        fpn_top_down_levels: Sequence[int],
        fpn_interp_model: str = "nearest",
    ) -> None:
        super().__init__()
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(dim, d_model, kernel_size=1)))
            for dim in backbone_channel_list
        )
        self.fpn_top_down_levels = list(fpn_top_down_levels)
        self.fpn_interp_model = fpn_interp_model

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Trunk maps, highest resolution first -> (B, d_model, h_i, w_i) maps in the same order."""
        if len(xs) != len(self.convs):
            raise ValueError(f"the neck takes {len(self.convs)} maps, got {len(xs)}")
        n = len(xs) - 1
        out: list[torch.Tensor] = [xs[0]] * len(xs)
        prev: torch.Tensor | None = None
        for i in range(n, -1, -1):  # top-down: lowest resolution first
            lateral = self.convs[n - i](xs[i])
            if prev is not None and i in self.fpn_top_down_levels:
                mode = self.fpn_interp_model
                top_down = F.interpolate(
                    prev.float(),
                    scale_factor=2.0,
                    mode=mode,
                    align_corners=None if mode == "nearest" else False,
                )
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
        return out


class ImageEncoder(nn.Module):
    """Trunk + neck; returns SAM 2's backbone dict.

    Args:
        trunk: the Hiera trunk.
        neck: the FPN neck (its channel list must equal the trunk's).
        scalp: lowest-resolution levels dropped from the output (1 in SAM 2).
    """

    def __init__(self, *, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if trunk.channel_list != neck.backbone_channel_list:
            raise ValueError(
                f"trunk channels {trunk.channel_list} differ from the neck's "
                f"{neck.backbone_channel_list}"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, sample: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """(B, 3, H, W) normalised image -> backbone dict.

        Returns:
            `backbone_fpn`: list of (B, 256, H/s, W/s) maps, s = 4, 8, 16 (highest resolution
            first); `vision_pos_enc`: their (B, 256, H/s, W/s) sine codes; `vision_features`:
            the last (stride-16) map.
        """
        features = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features = features[: -self.scalp]
        pos = [self.neck.position_encoding(f).to(f.dtype) for f in features]
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}

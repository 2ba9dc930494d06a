"""`ROIPooler`: RoIAlign over a feature pyramid, each box pooled from the level fitting its size."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from masktron.layers import ROIAlign
from masktron.layers.roi_align_parallel import roi_align_split
from masktron.structures import Boxes


def assign_boxes_to_levels(
    boxes: list[Boxes],
    min_level: int,
    max_level: int,
    canonical_box_size: int = 224,
    canonical_level: int = 4,
) -> torch.Tensor:
    """FPN paper's eq. (1): `floor(k0 + log2(sqrt(area) / 224))`, clamped to the pyramid.

    Returns:
        (R,) int64 level index of each box, 0 for `min_level`.
    """
    sizes = torch.sqrt(torch.cat([b.area() for b in boxes]))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size + 1e-8))
    levels = torch.clamp(levels, min=min_level, max=max_level)
    return levels.to(torch.int64) - min_level


def boxes_to_rois(boxes: list[Boxes]) -> torch.Tensor:
    """Per-image boxes -> (R, 5) rows of (image index, x0, y0, x1, y1)."""
    tensors = [b.tensor for b in boxes]
    # t.shape[0], not len(t): a traced (ONNX) graph keeps the number of boxes dynamic
    index = torch.cat([torch.full_like(t[:, :1], i) for i, t in enumerate(tensors)])
    return torch.cat([index, torch.cat(tensors)], dim=1)


def nchw_contiguous(feature: torch.Tensor) -> torch.Tensor:
    """A channels-last CPU map (N, C, H, W) copied to the (N, C, H, W)-contiguous layout
    RoIAlign reads; any other `feature` as it is.

    torchvision's CPU kernel makes a channels-last map contiguous itself, in every call, by a
    strided copy; here it is copied once, as 2-D transposes that PyTorch copies in cache-sized
    blocks (about 3.5x less CPU time for a 256x200x200 map). Same values. Autograd, tracing,
    `torch.compile` and export see the map unchanged.
    """
    if (
        feature.dim() != 4
        or feature.is_contiguous()
        or not feature.is_contiguous(memory_format=torch.channels_last)
        or feature.device.type != "cpu"
        or type(feature) is not torch.Tensor
        or (torch.is_grad_enabled() and feature.requires_grad)
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
    ):
        return feature
    n, c, h, w = feature.shape
    out = feature.new_empty(n, c, h, w)
    for i in range(n):
        # (C, H, W) channels-last -> (H, W, C) contiguous -> (H*W, C) -> transposed (C, H*W)
        out[i].view(c, h * w).copy_(feature[i].permute(1, 2, 0).reshape(h * w, c).t())
    return out


def nchw_feature_maps(
    features: dict[str, torch.Tensor], names: Iterable[str]
) -> dict[str, torch.Tensor]:
    """`features` with the maps `names` made `nchw_contiguous`: done once where several
    poolers (box, mask, keypoint, cascade stages) read the same maps."""
    converted = {name: nchw_contiguous(features[name]) for name in set(names)}
    return {**features, **converted}


class ROIPooler(nn.Module):
    """Pool a fixed-size feature for every box from a list of feature maps.

    Args:
        output_size: bins per side (7 for box heads, 14 for mask heads).
        scales: 1 / stride of each feature map, finest first; strides must be powers of 2.
        sampling_ratio: samples per bin side (0: adaptive).
        pooler_type: "ROIAlignV2" (aligned, Detectron2's default) or "ROIAlign".
        canonical_box_size, canonical_level: a box of this size goes to this level.
    """

    def __init__(
        self,
        *,
        output_size: int,
        scales: list[float],
        sampling_ratio: int,
        pooler_type: str,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        if pooler_type not in ("ROIAlignV2", "ROIAlign"):
            raise ValueError(f"pooler type must be ROIAlignV2 or ROIAlign, got {pooler_type!r}")
        aligned = pooler_type == "ROIAlignV2"
        self.level_poolers = nn.ModuleList(
            ROIAlign(output_size, scale, sampling_ratio, aligned=aligned) for scale in scales
        )
        levels = [-math.log2(scale) for scale in scales]
        if any(abs(level - round(level)) > 1e-6 for level in levels):
            raise ValueError(f"pooler scales must be powers of 1/2, got {scales}")
        self.min_level, self.max_level = round(levels[0]), round(levels[-1])
        if self.max_level - self.min_level + 1 != len(scales):
            raise ValueError(f"pooler scales must be consecutive powers of 1/2, got {scales}")
        self.output_size = output_size
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def forward(self, features: list[torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """Args: features, per level (N, C, H_l, W_l); boxes, per image, in input pixels.

        Returns:
            (R, C, S, S) pooled features, boxes in image order; (0, C, S, S) for no images.
        """
        if len(features) != len(self.level_poolers):
            raise ValueError(f"{len(features)} feature maps for {len(self.level_poolers)} scales")
        if len(boxes) == 0:  # e.g. a batch of zero images (Detectron2 returns an empty tensor)
            size = self.output_size
            return features[0].new_zeros(0, features[0].shape[1], size, size)
        rois = boxes_to_rois(boxes)
        if len(self.level_poolers) == 1:
            (only,) = roi_align_split([(self.level_poolers[0], nchw_contiguous(features[0]), rois)])
            return only[0] if len(only) == 1 else torch.cat(only)
        levels = assign_boxes_to_levels(
            boxes, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )
        if torch.jit.is_tracing():
            return self._forward_traced(features, rois, levels)
        channels, size = features[0].shape[1], self.output_size
        calls, indices = [], []
        for level, (feature, pooler) in enumerate(zip(features, self.level_poolers)):
            idx = torch.nonzero(levels == level, as_tuple=True)[0]
            if idx.numel():
                calls.append((pooler, nchw_contiguous(feature), rois[idx]))
                indices.append(idx)
        # Rows of boxes without a level (a NaN size) stay zero; when every box has one, each
        # row is written below and the zero fill is skipped.
        covered = sum(len(idx) for idx in indices) == len(rois)
        out = (features[0].new_empty if covered else features[0].new_zeros)(
            len(rois), channels, size, size
        )
        # The boxes of all levels are split across threads (torchvision's CPU kernel uses
        # one); each level's pieces go back to their boxes' rows.
        for idx, pieces in zip(indices, roi_align_split(calls)):
            start = 0
            for piece in pieces:
                out[idx[start : start + len(piece)]] = piece.to(out.dtype)
                start += len(piece)
        return out

    def _forward_traced(
        self, features: list[torch.Tensor], rois: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """`forward`'s export mode (ONNX): every level pools its boxes, however many (none
        included), and one gather puts the results back in box order (no scatter, whose ONNX
        form fails on an empty level)."""
        pooled, order = [], []
        for level, (feature, pooler) in enumerate(zip(features, self.level_poolers)):
            idx = torch.nonzero(levels == level, as_tuple=True)[0]
            pooled.append(pooler(feature, rois[idx]))
            order.append(idx)
        return torch.cat(pooled)[torch.argsort(torch.cat(order))]

"""RoIAlign: bilinear, quantisation-free pooling of box regions (He et al., Mask R-CNN, 2017).

`ROIAlign` runs torchvision's kernel; `roi_align_reference` is a plain-PyTorch version of the
same arithmetic, used as the test oracle and as the fallback where the kernel is missing.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torchvision.ops import roi_align as _tv_roi_align


def _bilinear(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sample (C, H, W) `feature` at points y, x of shape (P,) -> (C, P), Caffe2's border rules.

    A point more than one cell outside the map contributes 0; points in the last half cell are
    clamped to the border (the rules of Detectron's and torchvision's kernels).
    """
    _, height, width = feature.shape
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.floor().long().clamp(max=height - 1)
    x_low = x.floor().long().clamp(max=width - 1)
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    y = torch.where(y_low >= height - 1, y_low.to(y.dtype), y)
    x = torch.where(x_low >= width - 1, x_low.to(x.dtype), x)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    value = (
        hy * hx * feature[:, y_low, x_low]
        + hy * lx * feature[:, y_low, x_high]
        + ly * hx * feature[:, y_high, x_low]
        + ly * lx * feature[:, y_high, x_high]
    )
    return torch.where(outside, torch.zeros_like(value), value)


def roi_align_reference(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """RoIAlign in plain PyTorch (slow: one loop step per box).

    Args:
        features: (N, C, H, W) feature maps.
        rois: (R, 5) rows of (batch index, x0, y0, x1, y1) in input-image pixels.
        output_size: (PH, PW) bins per box.
        spatial_scale: feature cells per image pixel (1/stride).
        sampling_ratio: samples per bin side; <= 0 means ceil(box side / bins), per box.
        aligned: shift boxes by -0.5 cell so that pixel centres line up (Detectron2's
            ROIAlignV2); when False, boxes are also forced to be at least 1x1 cells.

    Returns:
        (R, C, PH, PW): the mean of the bilinear samples in each bin.
    """
    ph, pw = output_size
    out = features.new_zeros(rois.shape[0], features.shape[1], ph, pw)
    offset = 0.5 if aligned else 0.0
    for r, roi in enumerate(rois):
        feature = features[int(roi[0])]
        x0, y0, x1, y1 = (roi[1:] * spatial_scale - offset).tolist()
        roi_w, roi_h = x1 - x0, y1 - y0
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw)
        count = max(grid_h * grid_w, 1)
        # Sample positions: bin i, sample k -> start + i * bin + (k + 0.5) * bin / grid.
        iy = torch.arange(ph, dtype=features.dtype)[:, None] * bin_h
        ix = torch.arange(pw, dtype=features.dtype)[:, None] * bin_w
        ky = (torch.arange(grid_h, dtype=features.dtype) + 0.5) * bin_h / grid_h
        kx = (torch.arange(grid_w, dtype=features.dtype) + 0.5) * bin_w / grid_w
        ys = (y0 + iy + ky).reshape(-1)  # (PH, GH) -> (PH*GH,)
        xs = (x0 + ix + kx).reshape(-1)  # (PW, GW) -> (PW*GW,)
        yy = ys[:, None].expand(-1, xs.numel()).reshape(-1)  # (PH*GH, PW*GW) -> (P,)
        xx = xs[None, :].expand(ys.numel(), -1).reshape(-1)  # (PH*GH, PW*GW) -> (P,)
        samples = _bilinear(feature, yy.to(feature.device), xx.to(feature.device))  # (C, P)
        samples = samples.reshape(-1, ph, grid_h, pw, grid_w)  # (C, P) -> (C, PH, GH, PW, GW)
        out[r] = samples.sum(dim=(2, 4)) / count
    return out


def _kernel_available() -> bool:
    try:
        x = torch.zeros(1, 1, 2, 2)
        _tv_roi_align(x, torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]), (1, 1), 1.0, 0, True)
    except (RuntimeError, NotImplementedError):
        return False
    return True


_HAS_KERNEL: bool | None = None


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign by torchvision's kernel, or by `roi_align_reference` where it is missing."""
    global _HAS_KERNEL
    if _HAS_KERNEL is None:
        _HAS_KERNEL = _kernel_available()
    if _HAS_KERNEL:
        try:
            return _tv_roi_align(
                features,
                rois.to(features.dtype),
                output_size,
                spatial_scale,
                sampling_ratio,
                aligned,
            )
        except NotImplementedError:  # e.g. a device without the kernel
            pass
    return roi_align_reference(features, rois, output_size, spatial_scale, sampling_ratio, aligned)


class ROIAlign(nn.Module):
    """RoIAlign as a module (Detectron2's `ROIAlign(output_size, spatial_scale, sampling_ratio,
    aligned)`); `forward(features (N, C, H, W), rois (R, 5))` -> (R, C, PH, PW)."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        # A list from a config becomes a tuple; the annotation says (PH, PW).
        self.output_size = cast("tuple[int, int]", tuple(output_size))
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError(f"rois must be (R, 5) (batch index + XYXY), got {tuple(rois.shape)}")
        return roi_align(
            features, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )

"""Large-scale jitter (Ghiasi et al. 2021, "Simple Copy-Paste"), as Detectron2's new baselines
use it: `ResizeScale` scales the image to a random fraction of a target size, `FixedSizeCrop`
crops (and pads) it to that size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from masktron.data.transforms.augmentation import Augmentation
from masktron.data.transforms.transform import (
    CropTransform,
    ResizeTransform,
    Transform,
    TransformList,
)
from masktron.data.transforms.transform_extra import PadTransform

__all__ = ["FixedSizeCrop", "ResizeScale"]


class ResizeScale(Augmentation):
    """Resize so the image fits in `scale * (target_height, target_width)`, keeping its aspect
    ratio, with `scale` drawn uniformly from [min_scale, max_scale].

    Args:
        min_scale, max_scale: the range of the random scale (e.g. 0.1 and 2.0).
        target_height, target_width: the size the scale is relative to (e.g. 1024 x 1024).
        interp: a PIL resampling filter.
    """

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.Resampling.BILINEAR,
    ):
        if not 0 < min_scale <= max_scale:
            raise ValueError(
                f"ResizeScale needs 0 < min_scale <= max_scale, got {min_scale}, {max_scale}"
            )
        self.min_scale, self.max_scale = min_scale, max_scale
        self.target_height, self.target_width = target_height, target_width
        self.interp = interp

    def _resize_for(self, image: np.ndarray, scale: float) -> Transform:
        h, w = image.shape[:2]
        factor = min(scale * self.target_height / h, scale * self.target_width / w)
        new_h, new_w = (int(v) for v in np.round(np.multiply((h, w), factor)))
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    def get_transform(self, image: np.ndarray) -> Transform:
        return self._resize_for(image, np.random.uniform(self.min_scale, self.max_scale))


class FixedSizeCrop(Augmentation):
    """Crop a random `crop_size` window (where the image is larger), then pad to `crop_size`
    (where it is smaller) with `pad_value` (images) / `seg_pad_value` (segmentations).

    Args:
        crop_size: (h, w) of the output.
        pad: pad images smaller than `crop_size` up to it.
        pad_value, seg_pad_value: padding values.
    """

    def __init__(
        self,
        crop_size: Sequence[int],
        pad: bool = True,
        pad_value: float = 128.0,
        seg_pad_value: int = 255,
    ):
        self.crop_size = tuple(crop_size)
        self.pad = pad
        self.pad_value = pad_value
        self.seg_pad_value = seg_pad_value

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        out_h, out_w = self.crop_size
        max_dy, max_dx = max(h - out_h, 0), max(w - out_w, 0)
        fraction = np.random.uniform(0.0, 1.0)  # one draw for both axes, as Detectron2
        y0, x0 = round(max_dy * fraction), round(max_dx * fraction)
        transforms: list[Transform] = [CropTransform(x0, y0, out_w, out_h)]
        if self.pad:
            kept_h, kept_w = min(h, out_h), min(w, out_w)
            transforms.append(
                PadTransform(
                    0,
                    0,
                    out_w - kept_w,
                    out_h - kept_h,
                    kept_w,
                    kept_h,
                    self.pad_value,
                    self.seg_pad_value,
                )
            )
        return TransformList(transforms)

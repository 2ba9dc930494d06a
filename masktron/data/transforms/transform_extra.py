"""More deterministic transforms with Detectron2/fvcore semantics: scale with torch, resample a
rectangle (PIL's EXTENT), pad, and arbitrary colour operations.

Coordinates follow `transform.py`: continuous pixel coordinates, (N, 2) float (x, y).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from masktron.data.transforms.transform import CropTransform, NoOpTransform, Transform

__all__ = [
    "ColorTransform",
    "ExtentTransform",
    "PILColorTransform",
    "PadTransform",
    "ScaleTransform",
]


def _interpolate(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize (H, W[, C]) or (N, H, W, C) with `F.interpolate`, keeping the dtype (integers
    rounded)."""
    dtype, shape = img.dtype, img.shape
    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32)
    if x.ndim == 2:
        x = x[None, None]  # (H, W) -> (1, 1, H, W)
    elif x.ndim == 3:
        x = x.permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
    else:
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    align = False if mode in ("linear", "bilinear", "bicubic") else None
    x = F.interpolate(x, size, mode=mode, align_corners=align)
    if len(shape) == 2:
        out = x[0, 0].numpy()  # (1, 1, H', W') -> (H', W')
    elif len(shape) == 3:
        out = x[0].permute(1, 2, 0).numpy()  # (1, C, H', W') -> (H', W', C)
    else:
        out = x.permute(0, 2, 3, 1).numpy()  # (N, C, H', W') -> (N, H', W', C)
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        out = out.round()
    return out.astype(dtype)


class ScaleTransform(Transform):
    """Resize (h, w) -> (new_h, new_w) with `torch.nn.functional.interpolate` (any dtype).

    Args:
        h, w: input size.
        new_h, new_w: output size.
        interp: "nearest", "bilinear", "bicubic" or "area".
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: str = "bilinear"):
        self.h, self.w, self.new_h, self.new_w = int(h), int(w), int(new_h), int(new_w)
        self.interp = interp

    def apply_image(self, img: np.ndarray, interp: str | None = None) -> np.ndarray:
        h, w = img.shape[1:3] if img.ndim == 4 else img.shape[:2]
        if (h, w) != (self.h, self.w):
            raise ValueError(f"ScaleTransform for {self.h}x{self.w} got an image of {img.shape}")
        return _interpolate(img, (self.new_h, self.new_w), interp or self.interp)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp="nearest")

    def inverse(self) -> Transform:
        return ScaleTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class ExtentTransform(Transform):
    """Resample the rectangle `src_rect` (x0, y0, x1, y1) of the image to `output_size` (h, w)
    with PIL's EXTENT transform; parts outside the image get `fill`.

    Args:
        src_rect: the source rectangle in input pixels.
        output_size: (h, w) of the output.
        interp: PIL resampling filter.
        fill: value outside the image.
    """

    def __init__(
        self,
        src_rect: Sequence[float],
        output_size: Sequence[int],
        interp: int = Image.Resampling.BILINEAR,
        fill: int = 0,
    ):
        self.src_rect = tuple(src_rect)
        self.output_size = tuple(output_size)
        self.interp = interp
        self.fill = fill

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        h, w = self.output_size
        one_channel = img.ndim == 3 and img.shape[2] == 1
        pil = Image.fromarray(img[:, :, 0] if one_channel else img)
        pil = pil.transform(
            size=(w, h),
            method=Image.Transform.EXTENT,
            data=self.src_rect,
            resample=self.interp if interp is None else interp,
            fill=self.fill,
        )
        out = np.asarray(pil)
        return out[:, :, None] if one_channel else out  # (H, W) -> (H, W, 1)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        h, w = self.output_size
        x0, y0, x1, y1 = self.src_rect
        out = coords.astype(np.float32)
        out[:, 0] = (out[:, 0] - 0.5 * (x0 + x1)) * (w / (x1 - x0)) + 0.5 * w
        out[:, 1] = (out[:, 1] - 0.5 * (y0 + y1)) * (h / (y1 - y0)) + 0.5 * h
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.Resampling.NEAREST)


class PadTransform(Transform):
    """Pad `x0`/`x1` columns left/right and `y0`/`y1` rows top/bottom.

    Args:
        orig_w, orig_h: the input size (needed only by `inverse`).
        pad_value: fill of images; seg_pad_value: fill of segmentation maps.
    """

    def __init__(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        orig_w: int | None = None,
        orig_h: int | None = None,
        pad_value: float = 0,
        seg_pad_value: int = 0,
    ):
        self.x0, self.y0, self.x1, self.y1 = int(x0), int(y0), int(x1), int(y1)
        self.orig_w, self.orig_h = orig_w, orig_h
        self.pad_value, self.seg_pad_value = pad_value, seg_pad_value

    def _pad(self, img: np.ndarray, value: float) -> np.ndarray:
        width = [(self.y0, self.y1), (self.x0, self.x1)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, width, mode="constant", constant_values=value)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._pad(img, self.pad_value)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._pad(segmentation, self.seg_pad_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] += self.x0
        coords[:, 1] += self.y0
        return coords

    def inverse(self) -> Transform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("PadTransform.inverse needs orig_w and orig_h")
        return CropTransform(self.x0, self.y0, self.orig_w, self.orig_h)


class ColorTransform(Transform):
    """Apply `op(image)` (a colour change); coordinates and segmentations are unchanged.

    Args:
        op: a function of an (H, W, C) array returning an array of the same shape.
    """

    def __init__(self, op: Callable[[np.ndarray], np.ndarray]):
        if not callable(op):
            raise TypeError(f"ColorTransform needs a callable op, got {op!r}")
        self.op = op

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class PILColorTransform(ColorTransform):
    """`ColorTransform` whose `op` takes and returns a PIL image (e.g. `ImageOps.solarize`)."""

    def __init__(self, op: Callable[[Image.Image], Image.Image]):
        super().__init__(op)  # type: ignore[arg-type]  # a PIL op, not an array op

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        op: Callable[[Image.Image], Image.Image] = self.op  # type: ignore[assignment]
        return np.asarray(op(Image.fromarray(img)))

"""Deterministic transforms (Detectron2/fvcore semantics) applied to images, coordinates and masks.

A `Transform` is fully determined by its arguments; it knows how to apply itself to an image
(H, W) / (H, W, C), to (N, 2) float coordinates, to (N, 4) XYXY boxes, to polygons and to
full-image segmentation maps. Coordinates are continuous pixel coordinates: on an image of size
(H, W) they lie in [0, W] x [0, H] (a pixel's centre is at +0.5), which is why a horizontal
flip maps x to `width - x`, not `width - 1 - x`.

Random choices live in `Augmentation`s (see `augmentation.py`), which return `Transform`s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from masktron.data.transforms.polygon_clip import clip_polygon_to_box

__all__ = [
    "CropTransform",
    "HFlipTransform",
    "NoOpTransform",
    "ResizeTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
]

_PIL_TO_TORCH_MODE: dict[int, str] = {
    Image.Resampling.NEAREST: "nearest",
    Image.Resampling.BILINEAR: "bilinear",
    Image.Resampling.BICUBIC: "bicubic",
}


@functools.lru_cache(maxsize=64)
def _pil_nearest_indices(old: int, new: int) -> np.ndarray:
    """Source index of each of `new` output pixels when PIL resizes `old` -> `new` (NEAREST)."""
    index = np.arange(old, dtype=np.int32)[None, :]  # a 1 x old image of its own indices
    out = np.array(Image.fromarray(index).resize((new, 1), Image.Resampling.NEAREST))[0]
    out.setflags(write=False)  # shared by the cache
    return out


class Transform:
    """Base class: subclasses implement `apply_image` and `apply_coords` (may modify in place)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Transform (N, 2) float (x, y) coordinates; the input may be modified in place."""
        raise NotImplementedError

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Transform an (H, W) integer/bool label map (nearest-neighbour where resampling)."""
        return self.apply_image(segmentation)

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """(N, 4) XYXY boxes -> (N, 4): the box around the 4 transformed corners."""
        # (N, 4) -> (N, 4 corners, 2): (x0, y0), (x1, y0), (x0, y1), (x1, y1)
        corner_index = np.array([(0, 1), (2, 1), (0, 3), (2, 3)]).flatten()
        coords = np.asarray(box, dtype=np.float64).reshape(-1, 4)[:, corner_index].reshape(-1, 2)
        corners = self.apply_coords(coords).reshape(-1, 4, 2)  # (N*4, 2) -> (N, 4, 2)
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        """Each polygon an (K, 2) array of (x, y) points."""
        return [self.apply_coords(p) for p in polygons]

    def inverse(self) -> Transform:
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def _params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._params() == other._params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


class TransformList(Transform):
    """Transforms applied in sequence; nested lists are flattened."""

    transforms: list[Transform]

    def __init__(self, transforms: Sequence[Transform]):
        flat: list[Transform] = []
        for t in transforms:
            if isinstance(t, TransformList):
                flat.extend(t.transforms)
            elif isinstance(t, Transform):
                flat.append(t)
            else:
                raise TypeError(f"TransformList takes Transform objects, got {t!r}")
        self.transforms = flat

    def _apply(self, x: Any, method: str) -> Any:
        for t in self.transforms:
            x = getattr(t, method)(x)
        return x

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._apply(img, "apply_image")

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return self._apply(coords, "apply_coords")

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._apply(segmentation, "apply_segmentation")

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        return self._apply(box, "apply_box")

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        return self._apply(polygons, "apply_polygons")

    def inverse(self) -> TransformList:
        return TransformList([t.inverse() for t in reversed(self.transforms)])

    def __add__(self, other: Transform) -> TransformList:
        return TransformList([*self.transforms, other])

    def __radd__(self, other: Transform) -> TransformList:
        return TransformList([other, *self.transforms])

    def __iadd__(self, other: Transform) -> TransformList:
        self.transforms = TransformList([*self.transforms, other]).transforms
        return self

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, idx: int) -> Transform:
        return self.transforms[idx]

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"TransformList[{', '.join(repr(t) for t in self.transforms)}]"


class NoOpTransform(Transform):
    """Leaves everything unchanged."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        return polygons

    def inverse(self) -> Transform:
        return self


class HFlipTransform(Transform):
    """Mirror left-right: pixel column j -> width - 1 - j, coordinate x -> width - x."""

    def __init__(self, width: int):
        self.width = width

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        axis = 1 if img.ndim <= 3 else -2  # (H, W[, C]) or (N, H, W, C)
        return np.ascontiguousarray(np.flip(img, axis=axis))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = self.width - coords[:, 0]
        return coords

    def inverse(self) -> Transform:
        return self


class VFlipTransform(Transform):
    """Mirror top-bottom: coordinate y -> height - y."""

    def __init__(self, height: int):
        self.height = height

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        axis = 0 if img.ndim <= 3 else -3  # (H, W[, C]) or (N, H, W, C)
        return np.ascontiguousarray(np.flip(img, axis=axis))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 1] = self.height - coords[:, 1]
        return coords

    def inverse(self) -> Transform:
        return self


class CropTransform(Transform):
    """Keep `img[y0 : y0 + h, x0 : x0 + w]`; coordinates shift by (-x0, -y0).

    Polygons are clipped to the crop window (Detectron2 uses shapely for this; here a
    Sutherland-Hodgman clip against the rectangle, which gives the same covered area; a
    concave polygon cut in two stays one polygon joined along the window's edge). Like
    shapely's output, clipped polygons are oriented with a negative signed area
    (clockwise in x-right, y-up axes), whatever the input's orientation.
    """

    def __init__(self, x0: int, y0: int, w: int, h: int):
        self.x0, self.y0, self.w, self.h = int(x0), int(y0), int(w), int(h)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.ndim <= 3:  # (H, W[, C])
            return img[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w]
        return img[..., self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w, :]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] -= self.x0
        coords[:, 1] -= self.y0
        return coords

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        window = (self.x0, self.y0, self.x0 + self.w, self.y0 + self.h)
        clipped = [clip_polygon_to_box(np.asarray(p, dtype=np.float64), window) for p in polygons]
        return [self.apply_coords(_clockwise(p)) for p in clipped if len(p) >= 3]


def _clockwise(points: np.ndarray) -> np.ndarray:
    """(K, 2) vertices ordered so the signed (shoelace) area is negative."""
    x, y = points[:, 0], points[:, 1]
    signed = float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    return points[::-1].copy() if signed > 0 else points


class ResizeTransform(Transform):
    """Resize (h, w) -> (new_h, new_w), exactly as Detectron2 does.

    uint8 images go through PIL's `Image.resize` (bilinear by default, which filters with a
    support scaled by the shrink factor, i.e. antialiased when shrinking); other dtypes through
    `torch.nn.functional.interpolate` (`align_corners=False`), keeping their dtype. Coordinates
    scale by new/old along each axis.

    Args:
        h, w: input size in pixels.
        new_h, new_w: output size in pixels.
        interp: a PIL resampling filter (`Image.Resampling.*`); default bilinear.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int | None = None):
        self.h, self.w, self.new_h, self.new_w = int(h), int(w), int(new_h), int(new_w)
        self.interp = Image.Resampling.BILINEAR if interp is None else interp

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if tuple(img.shape[:2]) != (self.h, self.w):
            raise ValueError(
                f"ResizeTransform for a {self.h}x{self.w} image got an image of shape {img.shape}"
            )
        interp = self.interp if interp is None else interp
        if img.dtype == np.uint8 or img.dtype == np.bool_:
            return self._resize_pil(img, interp)
        return self._resize_torch(img, interp)

    def _resize_pil(self, img: np.ndarray, interp: int) -> np.ndarray:
        if interp == Image.Resampling.NEAREST:
            # Gather with PIL's own nearest-neighbour index maps: the same result as resizing
            # each channel with PIL, in one step for any number of channels (stacked masks).
            rows = _pil_nearest_indices(self.h, self.new_h)
            cols = _pil_nearest_indices(self.w, self.new_w)
            return img[rows][:, cols]
        is_bool = img.dtype == np.bool_
        if is_bool:
            img = img.astype(np.uint8)
        size = (self.new_w, self.new_h)
        if img.ndim == 2 or img.shape[2] in (3, 4):
            out = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size, interp))
        else:  # 1, 2 or >4 channels: resize each as a greyscale image
            channels = [
                np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize(size, interp))
                for c in range(img.shape[2])
            ]
            out = np.stack(channels, axis=2)
        return out.astype(bool) if is_bool else out

    def _resize_torch(self, img: np.ndarray, interp: int) -> np.ndarray:
        mode = _PIL_TO_TORCH_MODE.get(interp)
        if mode is None:
            raise ValueError(f"interpolation {interp!r} is not supported for non-uint8 images")
        dtype = img.dtype
        x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32)
        x = x[:, :, None] if x.ndim == 2 else x  # (H, W) -> (H, W, 1)
        x = x.permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
        align = None if mode == "nearest" else False
        x = F.interpolate(x, (self.new_h, self.new_w), mode=mode, align_corners=align)
        out = x[0].permute(1, 2, 0).numpy()  # (1, C, H', W') -> (H', W', C)
        out = out[:, :, 0] if img.ndim == 2 else out
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.Resampling.NEAREST)

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)

"""The augmentations Detectron2's default pipeline uses: resizing, flipping and cropping."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

from masktron.data.transforms.augmentation import Augmentation, _transform_to_aug
from masktron.data.transforms.transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    Transform,
    VFlipTransform,
)

__all__ = ["RandomApply", "RandomCrop", "RandomFlip", "Resize", "ResizeShortestEdge"]


class ResizeShortestEdge(Augmentation):
    """Scale the shorter side to a sampled length, unless the longer side would exceed max_size.

    Args:
        short_edge_length: with `sample_style="range"` a [min, max] interval to draw an integer
            length from; with `"choice"` the lengths to choose among (an int means that one).
        max_size: the longest side allowed after resizing.
        sample_style: "range" or "choice".
        interp: a PIL resampling filter.
    """

    def __init__(
        self,
        short_edge_length: int | Sequence[int],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = Image.Resampling.BILINEAR,
    ):
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        self.is_range = sample_style == "range"
        if isinstance(short_edge_length, (int, np.integer)):
            short_edge_length = (int(short_edge_length), int(short_edge_length))
        short_edge_length = tuple(int(s) for s in short_edge_length)
        if self.is_range and len(short_edge_length) != 2:
            raise ValueError(
                f"sample_style='range' needs [min, max] short edge lengths, got {short_edge_length}"
            )
        if len(short_edge_length) == 0:
            raise ValueError("ResizeShortestEdge needs at least one short edge length")
        self.short_edge_length = short_edge_length
        self.max_size = max_size
        self.sample_style = sample_style
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.is_range:
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()
        new_h, new_w = ResizeShortestEdge.get_output_shape(h, w, int(size), self.max_size)
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    @staticmethod
    def get_output_shape(old_h: int, old_w: int, short_edge_length: int, max_size: int):
        """(new_h, new_w): scale so the short side is `short_edge_length`, cap the long side.

        The sizes are rounded with `int(x + 0.5)` after both scalings, as Detectron2 does (the
        predictor's outputs depend on this exact rounding).
        """
        size = short_edge_length * 1.0
        scale = size / min(old_h, old_w)
        if old_h < old_w:
            new_h, new_w = size, scale * old_w
        else:
            new_h, new_w = scale * old_h, size
        if max(new_h, new_w) > max_size:
            scale = max_size * 1.0 / max(new_h, new_w)
            new_h = new_h * scale
            new_w = new_w * scale
        # A very thin image (2 x 20000) would round its short side to 0: keep at least 1 pixel.
        return max(int(new_h + 0.5), 1), max(int(new_w + 0.5), 1)


class Resize(Augmentation):
    """Resize to a fixed (h, w) (or a square side)."""

    def __init__(self, shape: int | Sequence[int], interp: int = Image.Resampling.BILINEAR):
        if isinstance(shape, int):
            shape = (shape, shape)
        self.shape = tuple(int(s) for s in shape)
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        new_h, new_w = self.shape
        return ResizeTransform(image.shape[0], image.shape[1], new_h, new_w, self.interp)


class RandomFlip(Augmentation):
    """Flip horizontally (or vertically) with probability `prob`."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        if horizontal and vertical:
            raise ValueError("RandomFlip flips one way: use two RandomFlip for both")
        if not horizontal and not vertical:
            raise ValueError("RandomFlip needs horizontal=True or vertical=True")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.horizontal = horizontal
        self.vertical = vertical

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() < self.prob:
            return HFlipTransform(w) if self.horizontal else VFlipTransform(h)
        return NoOpTransform()


class RandomCrop(Augmentation):
    """Crop a random window whose size follows `crop_type` (Detectron2's four types).

    - "relative": (H * crop_size[0], W * crop_size[1]), crop_size in (0, 1].
    - "relative_range": relative, with each fraction drawn uniformly in [crop_size[i], 1].
    - "absolute": (crop_size[0], crop_size[1]) pixels, capped at the image size.
    - "absolute_range": height drawn in [crop_size[0], min(H, crop_size[1])], width likewise.
    """

    _TYPES = ("relative_range", "relative", "absolute", "absolute_range")

    def __init__(self, crop_type: str, crop_size: Sequence[float]):
        if crop_type not in self._TYPES:
            raise ValueError(f"crop_type must be one of {self._TYPES}, got {crop_type!r}")
        if len(crop_size) != 2:
            raise ValueError(f"crop_size needs two numbers, got {list(crop_size)}")
        # Like Detectron2, sizes are only checked against an image, in get_crop_size.
        self.crop_type = crop_type
        self.crop_size = tuple(crop_size)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        crop_h, crop_w = self.get_crop_size((h, w))
        y0 = np.random.randint(h - crop_h + 1)
        x0 = np.random.randint(w - crop_w + 1)
        return CropTransform(x0, y0, crop_w, crop_h)

    def get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(crop_h, crop_w) in pixels for an image of (h, w)."""
        h, w = image_size
        if self.crop_type.startswith("relative") and not all(0 < c <= 1 for c in self.crop_size):
            raise ValueError(
                f"RandomCrop({self.crop_type!r}): relative crop sizes must be in (0, 1], "
                f"got {list(self.crop_size)}"
            )
        if self.crop_type == "relative":
            ch, cw = self.crop_size
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            crop_size = np.asarray(self.crop_size, dtype=np.float32)
            ch, cw = crop_size + np.random.rand(2) * (1 - crop_size)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "absolute":
            return min(int(self.crop_size[0]), h), min(int(self.crop_size[1]), w)
        lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
        if lo > hi:
            raise ValueError(f"absolute_range crop needs min <= max, got {list(self.crop_size)}")
        ch = np.random.randint(min(h, lo), min(h, hi) + 1)
        cw = np.random.randint(min(w, lo), min(w, hi) + 1)
        return int(ch), int(cw)


class ArgumentError(ValueError, AssertionError):
    """A bad augmentation argument (an AssertionError too, which Detectron2 raises there)."""


class RandomApply(Augmentation):
    """Apply an augmentation (or a fixed transform) with probability `prob`."""

    def __init__(self, tfm_or_aug: Augmentation | Transform, prob: float = 0.5):
        if not 0.0 <= prob <= 1.0:
            raise ArgumentError(f"RandomApply prob must be in [0, 1], got {prob}")
        self.aug = _transform_to_aug(tfm_or_aug)
        self.prob = prob

    def get_transform(self, *args):  # type: ignore[no-untyped-def]
        """The wrapped augmentation's transform with probability `prob`, else a no-op."""
        if self._rand_range() < self.prob:
            return self.aug.get_transform(*args)
        return NoOpTransform()

    def __call__(self, aug_input) -> Transform:  # type: ignore[no-untyped-def]
        if self._rand_range() < self.prob:
            return self.aug(aug_input)
        return NoOpTransform()

"""Augmentations: random policies that look at the input and return a deterministic `Transform`.

The protocol is Detectron2's: an `Augmentation` declares which inputs it needs (the parameter
names of its `get_transform`, e.g. `image`, `boxes`, `sem_seg`), `AugInput` holds those inputs,
and calling an augmentation on an `AugInput` picks a transform, applies it to every input in
place and returns it, so the caller can apply the same transform to annotations afterwards.

Randomness comes from NumPy's global generator (`np.random`), as in Detectron2, so that
seeding it (the data loader does so per sample) makes augmentation reproducible.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from masktron.data.transforms.transform import Transform, TransformList

__all__ = [
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "StandardAugInput",
    "apply_augmentations",
    "apply_transform_gens",
]


class Augmentation:
    """Base class. Subclasses implement `get_transform(self, <input names>) -> Transform`."""

    # Names of the `AugInput` attributes passed to `get_transform`; None = read its signature.
    input_args: tuple[str, ...] | None = None

    def _init(self, params: dict[str, Any] | None = None) -> None:
        """Store constructor arguments as attributes (call with `locals()`)."""
        for key, value in (params or {}).items():
            if key != "self" and not key.startswith("_"):
                setattr(self, key, value)

    def get_transform(self, *args: Any) -> Transform:
        raise NotImplementedError

    def _input_names(self) -> tuple[str, ...]:
        if self.input_args is not None:
            return tuple(self.input_args)
        params = inspect.signature(self.get_transform).parameters.values()
        names = []
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(
                    f"{type(self).__name__}.get_transform takes *args; set `input_args` to name "
                    "the inputs it needs"
                )
            names.append(p.name)
        return tuple(names)

    def __call__(self, aug_input: AugInput) -> Transform:
        """Pick a transform from `aug_input`, apply it to `aug_input` in place, return it."""
        args = []
        for name in self._input_names():
            if not hasattr(aug_input, name):
                raise AttributeError(
                    f"{type(self).__name__} needs input {name!r}, which "
                    f"{type(aug_input).__name__} does not have"
                )
            args.append(getattr(aug_input, name))
        tfm = self.get_transform(*args)
        if not isinstance(tfm, Transform):
            raise TypeError(
                f"{type(self).__name__}.get_transform must return a Transform, got {tfm!r}"
            )
        aug_input.transform(tfm)
        return tfm

    def _rand_range(self, low: float = 1.0, high: float | None = None, size: Any = None) -> Any:
        """Uniform float in [low, high), or [0, low) when `high` is None (NumPy's generator)."""
        if high is None:
            low, high = 0.0, low
        return np.random.uniform(low, high, size if size is not None else [])

    def __repr__(self) -> str:
        try:
            params = inspect.signature(type(self).__init__).parameters
        except (TypeError, ValueError):
            return f"{type(self).__name__}()"
        parts = []
        for name, p in params.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            # As Detectron2: arguments left at their default object are not shown.
            if hasattr(self, name) and getattr(self, name) is not p.default:
                parts.append(f"{name}={getattr(self, name)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class _TransformToAug(Augmentation):
    """Wrap a fixed `Transform` so it can sit in a list of augmentations."""

    def __init__(self, tfm: Transform):
        self.tfm = tfm

    def get_transform(self, *args: Any) -> Transform:
        return self.tfm

    input_args = ()

    def __repr__(self) -> str:
        return repr(self.tfm)


def _transform_to_aug(tfm_or_aug: Transform | Augmentation) -> Augmentation:
    if isinstance(tfm_or_aug, Augmentation):
        return tfm_or_aug
    if isinstance(tfm_or_aug, Transform):
        return _TransformToAug(tfm_or_aug)
    raise TypeError(f"expected an Augmentation or a Transform, got {tfm_or_aug!r}")


class AugmentationList(Augmentation):
    """Apply augmentations in order; returns the `TransformList` of what was applied."""

    def __init__(self, augs: Sequence[Augmentation | Transform]):
        self.augs = [_transform_to_aug(a) for a in augs]

    def __call__(self, aug_input: AugInput) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(repr(a) for a in self.augs)}]"


class AugInput:
    """The inputs of an augmentation: an image and optionally boxes and a semantic label map.

    Args:
        image: (H, W) or (H, W, C) array, uint8 or float.
        boxes: (N, 4) XYXY absolute boxes, or None.
        sem_seg: (H, W) integer label map, or None.
    """

    def __init__(
        self,
        image: np.ndarray,
        *,
        boxes: np.ndarray | None = None,
        sem_seg: np.ndarray | None = None,
    ):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(
                f"AugInput needs an (H, W) or (H, W, C) numpy image, got {type(image).__name__}"
                + (f" of shape {image.shape}" if isinstance(image, np.ndarray) else "")
            )
        self.image = image
        self.boxes = boxes
        self.sem_seg = sem_seg

    def transform(self, tfm: Transform) -> None:
        """Apply `tfm` to every input, in place."""
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)

    def apply_augmentations(
        self, augmentations: Sequence[Augmentation | Transform]
    ) -> TransformList:
        return AugmentationList(augmentations)(self)


StandardAugInput = AugInput


def apply_augmentations(
    augmentations: Sequence[Augmentation | Transform], inputs: AugInput | np.ndarray
) -> tuple[AugInput | np.ndarray, TransformList]:
    """Apply augmentations to an `AugInput` (in place) or to a bare image.

    Returns:
        (the augmented input, or the augmented image when an image was given; the transforms)
    """
    if isinstance(inputs, np.ndarray):
        aug_input = AugInput(inputs)
        tfms = aug_input.apply_augmentations(augmentations)
        return aug_input.image, tfms
    return inputs, inputs.apply_augmentations(augmentations)


apply_transform_gens = apply_augmentations

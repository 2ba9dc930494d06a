"""Detectron2-style transforms (`masktron.data.transforms as T`): deterministic `Transform`s and
random `Augmentation`s that produce them."""

from masktron.data.transforms.augmentation import (
    AugInput,
    Augmentation,
    AugmentationList,
    StandardAugInput,
    apply_augmentations,
    apply_transform_gens,
)
from masktron.data.transforms.augmentation_impl import (
    RandomApply,
    RandomCrop,
    RandomFlip,
    Resize,
    ResizeShortestEdge,
)
from masktron.data.transforms.augmentation_lsj import FixedSizeCrop, ResizeScale
from masktron.data.transforms.transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from masktron.data.transforms.transform_extra import (
    ColorTransform,
    ExtentTransform,
    PadTransform,
    PILColorTransform,
    ScaleTransform,
)

__all__ = [
    "ColorTransform",
    "ExtentTransform",
    "FixedSizeCrop",
    "PILColorTransform",
    "PadTransform",
    "ResizeScale",
    "ScaleTransform",
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "CropTransform",
    "HFlipTransform",
    "NoOpTransform",
    "RandomApply",
    "RandomCrop",
    "RandomFlip",
    "Resize",
    "ResizeShortestEdge",
    "ResizeTransform",
    "StandardAugInput",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "apply_transform_gens",
]

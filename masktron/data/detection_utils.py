"""Per-image steps of the detection data pipeline (Detectron2's `detection_utils`).

Reading images, checking their size against the dataset dict, transforming instance
annotations (box, polygons, RLE) with the same `Transform` as the image, turning them into the
`Instances` targets models train on, and dropping instances left empty. `transform_proposals`
(precomputed proposals) lives in `masktron.data.proposals` and is importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pycocotools.mask as mask_util
import torch

from masktron.data import transforms as T
from masktron.data.catalog import MetadataCatalog
from masktron.data.image_io import (
    ImageReadError,
    convert_image_to_rgb,
    convert_PIL_to_numpy,
    get_image_size,
    read_image,
)
from masktron.data.keypoint_utils import (
    create_keypoint_hflip_indices,
    transform_keypoint_annotations,
)
from masktron.data.proposals import transform_proposals
from masktron.structures import (
    BitMasks,
    Boxes,
    BoxMode,
    Instances,
    Keypoints,
    PolygonMasks,
    polygons_to_bitmask,
)

__all__ = [
    "CropError",
    "ImageReadError",
    "SizeMismatchError",
    "annotations_to_instances",
    "build_augmentation",
    "build_transform_gen",
    "check_image_size",
    "check_metadata_consistency",
    "create_keypoint_hflip_indices",
    "convert_PIL_to_numpy",
    "convert_image_to_rgb",
    "filter_empty_instances",
    "gen_crop_transform_with_instance",
    "get_image_size",
    "read_image",
    "transform_instance_annotations",
    "transform_keypoint_annotations",
    "transform_proposals",
]


class SizeMismatchError(ValueError):
    """The image read from disk does not have the width/height its dataset dict says."""


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Raise `SizeMismatchError` if `image` (H, W[, C]) disagrees with the dict's width/height.

    Missing `width`/`height` are filled in from the image (so boxes can be mapped back to the
    original size later).
    """
    if "width" in dataset_dict or "height" in dataset_dict:
        image_wh = (image.shape[1], image.shape[0])
        expected_wh = (dataset_dict.get("width"), dataset_dict.get("height"))
        if image_wh != expected_wh:
            where = f" for image {dataset_dict['file_name']}" if "file_name" in dataset_dict else ""
            raise SizeMismatchError(
                f"Mismatched image shape{where}: got (W, H) = {image_wh}, the dataset says "
                f"{expected_wh}. Please check the width/height in your annotations (EXIF "
                "orientation is applied when reading)."
            )
    dataset_dict.setdefault("width", image.shape[1])
    dataset_dict.setdefault("height", image.shape[0])


def transform_instance_annotations(
    annotation: dict,
    transforms: T.Transform | Sequence[T.Transform],
    image_size: tuple[int, int],
    *,
    keypoint_hflip_indices: Any = None,
) -> dict:
    """Apply `transforms` to one instance's box and segmentation, in place.

    Args:
        annotation: an instance dict with `bbox`, `bbox_mode` and optionally `segmentation`
            (polygons: a list of flat [x0, y0, x1, y1, ...]; COCO RLE: a dict; or an (H, W)
            mask array).
        transforms: what was applied to the image.
        image_size: (height, width) of the transformed image.
        keypoint_hflip_indices: mirror index of each keypoint, needed to flip `keypoints`.

    Returns:
        The same dict, `bbox` now an XYXY_ABS float array clipped to the image, polygons as
        lists of float64 arrays, RLE/masks as an (H, W) uint8 array in the new frame,
        `keypoints` as a (K, 3) array (see `transform_keypoint_annotations`).
    """
    if isinstance(transforms, (list, tuple)):
        transforms = T.TransformList(transforms)
    else:  # one Transform (or an object with the same methods)
        transforms = cast(T.Transform, transforms)
    bbox = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS)
    bbox = transforms.apply_box(np.array([bbox], dtype=np.float64))[0].clip(min=0)
    annotation["bbox"] = np.minimum(bbox, list(image_size + image_size)[::-1])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS

    if "segmentation" in annotation:
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            polygons = [np.array(p, dtype=np.float64).reshape(-1, 2) for p in segm]
            annotation["segmentation"] = [
                p.reshape(-1) for p in transforms.apply_polygons(polygons)
            ]
        elif isinstance(segm, dict):
            mask = transforms.apply_segmentation(mask_util.decode(segm))
            _check_mask_size(mask, image_size)
            annotation["segmentation"] = mask
        elif isinstance(segm, np.ndarray):
            mask = transforms.apply_segmentation(segm)
            _check_mask_size(mask, image_size)
            annotation["segmentation"] = mask
        else:
            raise ValueError(
                f"cannot transform a segmentation of type {type(segm).__name__}: expected "
                "polygons (list of lists of floats), a COCO RLE dict or an (H, W) mask array"
            )
    if "keypoints" in annotation:
        annotation["keypoints"] = transform_keypoint_annotations(
            annotation["keypoints"], transforms, image_size, keypoint_hflip_indices
        )
    return annotation


def _check_mask_size(mask: np.ndarray, image_size: tuple[int, int]) -> None:
    if tuple(mask.shape[:2]) != tuple(image_size):
        raise ValueError(
            f"segmentation mask has size {tuple(mask.shape[:2])} after the transforms but the "
            f"image has {tuple(image_size)}: the RLE 'size' does not match the image"
        )


def annotations_to_instances(
    annos: list[dict], image_size: tuple[int, int], mask_format: str = "polygon"
) -> Instances:
    """Build the training targets of one image from its (transformed) annotations.

    Returns:
        `Instances` of `image_size` with `gt_boxes` (Boxes, XYXY), `gt_classes` (int64),
        when the annotations have segmentations, `gt_masks` (`PolygonMasks` for
        `mask_format="polygon"`, `BitMasks` for "bitmask"), and when they have keypoints,
        `gt_keypoints` (`Keypoints`, (N, K, 3)).
    """
    boxes = (
        np.stack(
            [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
        )
        if annos
        else np.zeros((0, 4))
    )
    target = Instances(image_size)
    target.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    target.gt_classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)

    if annos and "segmentation" in annos[0]:
        segms = [a["segmentation"] for a in annos]
        if mask_format == "polygon":
            target.gt_masks = _polygon_masks(segms)
        elif mask_format == "bitmask":
            target.gt_masks = _bit_masks(segms, image_size)
        else:
            raise ValueError(f"mask_format must be 'polygon' or 'bitmask', got {mask_format!r}")
    if annos and "keypoints" in annos[0]:
        kpts = [np.asarray(a.get("keypoints", []), dtype=np.float64).reshape(-1, 3) for a in annos]
        if len({k.shape for k in kpts}) != 1:
            raise ValueError(
                f"annotations of one image have different numbers of keypoints: "
                f"{sorted({len(k) for k in kpts})}"
            )
        target.gt_keypoints = Keypoints(np.stack(kpts))
    return target


def _polygon_masks(segms: list[Any]) -> PolygonMasks:
    for segm in segms:
        if not isinstance(segm, list):
            raise ValueError(
                "an annotation's segmentation is a mask/RLE, not polygons, but "
                "INPUT.MASK_FORMAT is 'polygon': set INPUT.MASK_FORMAT to 'bitmask'"
            )
    try:
        return PolygonMasks(segms)
    except ValueError as e:
        raise ValueError(f"invalid polygon in segmentation: {e}") from e


def _bit_masks(segms: list[Any], image_size: tuple[int, int]) -> BitMasks:
    masks = []
    for segm in segms:
        if isinstance(segm, list):
            masks.append(polygons_to_bitmask(segm, *image_size))
        elif isinstance(segm, dict):
            masks.append(mask_util.decode(segm))
        elif isinstance(segm, np.ndarray):
            if segm.ndim != 2:
                raise ValueError(f"a mask segmentation must be 2-D (H, W), got shape {segm.shape}")
            masks.append(segm)
        else:
            raise ValueError(
                f"cannot make a bit mask from a segmentation of type {type(segm).__name__}"
            )
    # As Detectron2, masks are stacked as they are (a mask of another size than the image, e.g.
    # an untransformed RLE, is kept); they must agree with each other.
    sizes = {tuple(m.shape[:2]) for m in masks}
    if len(sizes) > 1:
        raise ValueError(f"the segmentation masks of one image have different sizes: {sizes}")
    stacked = np.stack(masks)  # (N, H, W)
    if stacked.dtype != np.bool_:
        stacked = stacked != 0
    return BitMasks(torch.from_numpy(stacked))


def filter_empty_instances(
    instances: Instances,
    by_box: bool = True,
    by_mask: bool = True,
    box_threshold: float = 1e-5,
    return_mask: bool = False,
) -> Instances | tuple[Instances, torch.Tensor]:
    """Drop instances whose box has a side <= `box_threshold` or whose mask is empty."""
    if not (by_box or by_mask):
        raise ValueError("filter_empty_instances needs by_box or by_mask")
    keep = torch.ones(len(instances), dtype=torch.bool)
    if by_box:
        keep &= instances.gt_boxes.nonempty(threshold=box_threshold)
    if by_mask and instances.has("gt_masks"):
        keep &= instances.gt_masks.nonempty()
    kept = instances if bool(keep.all()) else instances[keep]  # no copy when nothing goes
    if return_mask:
        return kept, keep
    return kept


def check_metadata_consistency(key: str, dataset_names: Sequence[str]) -> None:
    """Raise if the datasets' metadata `key` (e.g. thing_classes) differ.

    Raises:
        AttributeError: a dataset has no such metadata.
        ValueError: the values differ.
    """
    if not dataset_names:
        return
    entries = [getattr(MetadataCatalog.get(d), key) for d in dataset_names]
    for name, entry in zip(dataset_names, entries):
        if entry != entries[0]:
            raise ValueError(
                f"datasets have different metadata {key!r}: {dataset_names[0]!r} has "
                f"{entries[0]!r}, {name!r} has {entry!r}"
            )


def build_augmentation(cfg: Any, is_train: bool) -> list[T.Augmentation]:
    """Detectron2's default augmentations from the config: resize, plus a flip when training."""
    if is_train:
        min_size = cfg.INPUT.MIN_SIZE_TRAIN
        max_size = cfg.INPUT.MAX_SIZE_TRAIN
        sample_style = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    else:
        min_size = cfg.INPUT.MIN_SIZE_TEST
        max_size = cfg.INPUT.MAX_SIZE_TEST
        sample_style = "choice"
    if isinstance(min_size, int):
        min_size = [min_size]
    augmentation: list[T.Augmentation] = [
        T.ResizeShortestEdge(list(min_size), max_size, sample_style)
    ]
    flip = cfg.INPUT.RANDOM_FLIP
    if flip not in ("none", "horizontal", "vertical"):
        raise ValueError(
            f"INPUT.RANDOM_FLIP must be 'none', 'horizontal' or 'vertical', got {flip!r}"
        )
    if is_train and flip != "none":
        augmentation.append(
            T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical")
        )
    return augmentation


build_transform_gen = build_augmentation


class CropError(ValueError, AssertionError):
    """An impossible instance-centred crop."""


def gen_crop_transform_with_instance(
    crop_size: Sequence[int], image_size: Sequence[int], instance: dict
) -> T.CropTransform:
    """A random `crop_size` (h, w) crop of an `image_size` (h, w) image that contains the centre
    of `instance`'s box (Detectron2's function, used by instance-aware crops).

    Raises:
        CropError: the box centre lies outside the image, or the crop is larger than it (a
            ValueError, and an AssertionError as Detectron2 raises there).
    """
    crop = np.asarray(crop_size, dtype=np.int64)
    size = np.asarray(image_size, dtype=np.int64)
    x0, y0, x1, y1 = BoxMode.convert(
        list(instance["bbox"]), instance["bbox_mode"], BoxMode.XYXY_ABS
    )
    center = np.array([(y0 + y1) * 0.5, (x0 + x1) * 0.5])  # (y, x)
    if (center > size).any():
        raise CropError(f"the instance's box centre {center[::-1]} is outside the image {size}")
    if (crop > size).any():
        raise CropError(f"crop size {tuple(crop)} is larger than the image size {tuple(size)}")
    low = np.maximum(np.floor(center).astype(np.int64) - crop, 0)
    high = np.minimum(np.maximum(size - crop, 0), np.ceil(center).astype(np.int64))
    top = np.random.randint(low[0], high[0] + 1)
    left = np.random.randint(low[1], high[1] + 1)
    return T.CropTransform(int(left), int(top), int(crop[1]), int(crop[0]))

"""Keypoint annotations in the data pipeline (Detectron2's keypoint parts of `detection_utils`
and `build`): transforming them with the image, swapping left and right on a horizontal flip,
and dropping training images with too few labelled keypoints.

Annotations hold COCO's flat `keypoints` list [x1, y1, v1, x2, y2, v2, ...] (v: 0 unlabelled,
1 labelled but hidden, 2 visible), in continuous pixel coordinates (the COCO loader adds 0.5 to
COCO's integer pixel indices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from masktron.data import transforms as T
from masktron.data.catalog import MetadataCatalog


def create_keypoint_hflip_indices(dataset_names: str | Sequence[str]) -> list[int]:
    """For each keypoint, the index of its mirror image (e.g. left_eye <-> right_eye), from the
    datasets' `keypoint_names` and `keypoint_flip_map` metadata (which must agree).

    Raises:
        ValueError: the datasets' metadata differ, or lack `keypoint_names`.
    """
    from masktron.data.detection_utils import check_metadata_consistency

    names_list = [dataset_names] if isinstance(dataset_names, str) else list(dataset_names)
    for key in ("keypoint_names", "keypoint_flip_map"):
        try:
            check_metadata_consistency(key, names_list)
        except AttributeError as e:
            raise ValueError(
                f"keypoint training needs metadata {key!r} for {names_list}: set "
                f"MetadataCatalog.get(name).{key}"
            ) from e
    meta = MetadataCatalog.get(names_list[0])
    names = list(meta.keypoint_names)
    flip_map = dict(meta.keypoint_flip_map)
    flip_map.update({v: k for k, v in flip_map.items()})
    return [names.index(flip_map.get(n, n)) for n in names]


def transform_keypoint_annotations(
    keypoints: Any,
    transforms: T.Transform,
    image_size: tuple[int, int],
    keypoint_hflip_indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Transform one instance's keypoints with the image's transforms.

    Points that land outside the (height, width) `image_size` become unlabelled; after an odd
    number of horizontal flips the keypoints are reordered by `keypoint_hflip_indices` (a left
    eye seen in a mirror is a right eye); unlabelled points get x = y = 0, as in COCO.

    Args:
        keypoints: flat [x, y, v] * K, or (K, 3).

    Returns:
        (K, 3) float64 array.
    """
    kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)  # (K*3,) -> (K, 3)
    xy = transforms.apply_coords(kps[:, :2].copy())
    inside = ((xy >= 0) & (xy <= np.array(image_size[::-1], dtype=np.float64))).all(axis=1)
    kps[:, :2] = xy
    kps[~inside, 2] = 0
    steps = transforms.transforms if isinstance(transforms, T.TransformList) else [transforms]
    flips = sum(isinstance(t, T.HFlipTransform) for t in steps)
    if flips % 2 == 1:
        if keypoint_hflip_indices is None:
            raise ValueError(
                "cannot flip keypoints without flip indices: give the DatasetMapper "
                "keypoint_hflip_indices (create_keypoint_hflip_indices(dataset_names))"
            )
        if len(keypoint_hflip_indices) != len(kps):
            raise ValueError(
                f"an annotation has {len(kps)} keypoints but the flip indices cover "
                f"{len(keypoint_hflip_indices)}"
            )
        kps = kps[np.asarray(keypoint_hflip_indices, dtype=np.int64)]
    kps[kps[:, 2] == 0] = 0
    return kps


def count_visible_keypoints(annotations: list[dict]) -> int:
    """Labelled keypoints (v > 0) over an image's non-crowd annotations."""
    return sum(
        int((np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum())
        for a in annotations
        if "keypoints" in a and not a.get("iscrowd", 0)
    )


def filter_images_with_few_keypoints(
    dataset_dicts: list[dict], min_keypoints_per_image: int
) -> list[dict]:
    """Drop images with fewer than `min_keypoints_per_image` labelled keypoints (Detectron2's
    MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE, applied when KEYPOINT_ON)."""
    return [
        d
        for d in dataset_dicts
        if count_visible_keypoints(d.get("annotations", [])) >= min_keypoints_per_image
    ]

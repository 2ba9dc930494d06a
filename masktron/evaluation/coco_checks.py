"""Checks of a COCO ground truth before it reaches an evaluation engine.

hotcoco and pycocotools assume well-formed input: a missing key is a `KeyError` deep inside
pycocotools, an annotation on an unknown image is silently dropped by hotcoco, a malformed RLE
makes pycocotools read past its buffer. Here every problem becomes a `ValueError` naming the file,
the entry and the field. Each check first runs over whole columns at once (the common case: all
is well) and walks the entries one by one only to name the first bad one.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import operator
import os
from collections.abc import Container, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from masktron.evaluation.rle import check_compressed_rles, check_rle_size, uncompressed_rles_ok

_SHOW = 8  # how many offending ids an error message lists
NUMBER_TYPES = frozenset({int, float})
_ANNOTATION_FIELDS = ("id", "image_id", "category_id", "bbox", "area")


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{os.fspath(path)}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not a valid JSON file ({e})") from None


def list_ids(values: Iterable[Any]) -> str:
    """`[a, b, ...] (n distinct)`: the first few of some offending ids, for a message."""
    values = sorted(set(values), key=str)
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return f"[{shown}{', ...' if len(values) > _SHOW else ''}] ({len(values)} distinct)"


def columns(dicts: Sequence[Any], keys: Sequence[str]) -> list[list[Any]]:
    """Each key's values over all `dicts` (a `KeyError` or `TypeError` where one lacks it).

    One pass per key: three times faster than one pass of tuples transposed with `zip`.
    """
    return [list(map(operator.itemgetter(key), dicts)) for key in keys]


def column_or(dicts: Sequence[Any], key: str, default: Any = None) -> list[Any]:
    """`key`'s value in each of `dicts`, `default` where one lacks it (a `TypeError` or
    `AttributeError` where one is not a dict).

    One pass at C speed when every dict has the key (the usual case), else `dict.get`.
    """
    try:
        return list(map(operator.itemgetter(key), dicts))
    except KeyError:
        return [d.get(key, default) for d in dicts]


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_box(box: Any, where: str) -> list[float]:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(map(is_number, box)):
        raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
    if box[2] < 0 or box[3] < 0:
        raise ValueError(f"{where}: 'bbox' [x, y, w, h] has a negative size: {box!r}")
    return [float(v) for v in box]


def box_array(boxes: Sequence[Any]) -> np.ndarray | None:
    """(N, 4) float64 when all are 4 finite numbers [x, y, w, h] with w, h >= 0, else None.

    Checked at once (numbers as numpy reads them, as pycocotools does).
    """
    if not set(map(type, boxes)) <= {list, tuple} or not set(map(len, boxes)) <= {4}:
        return None
    try:
        flat = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * len(boxes))
    except (ValueError, TypeError):
        return None
    array = flat.reshape(len(boxes), 4)
    if not (np.isfinite(array).all() and (array[:, 2:] >= 0).all()):
        return None
    return array


def _image_sizes_at_once(images: list) -> dict[Any, tuple[int, int]] | None:
    """id -> (height, width) when every image is a dict with a unique id and positive int
    sizes (checked at once), else None (then `_check_images_and_categories` says which)."""
    try:
        ids, heights, widths = columns(images, ("id", "height", "width"))
        sizes = dict(zip(ids, zip(heights, widths)))
    except (KeyError, TypeError):  # a missing key, an unhashable id, an image not a dict
        return None
    if len(sizes) != len(ids) or not set(map(type, heights)) | set(map(type, widths)) <= {int}:
        return None
    if images and (min(heights) <= 0 or min(widths) <= 0):
        return None
    return sizes


def _check_new_id(value: Any, seen: Container, where: str, what: str) -> None:
    """A ValueError if `value` is in `seen` or cannot be an id (a list, a dict)."""
    try:
        again = value in seen
    except TypeError:
        raise ValueError(f"{where}: {what} must be a number or a string, got {value!r}") from None
    if again:
        raise ValueError(f"{where}: {what} {value!r} appears twice")


def _check_images_and_categories(dataset: Mapping, source: str) -> tuple[dict, set]:
    """The images' id -> (height, width) and the category ids, checked."""
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            raise ValueError(f"{source}: missing the list {key!r} of a COCO ground truth")
    image_sizes = _image_sizes_at_once(dataset["images"])
    if image_sizes is None:
        image_sizes = {}
        for i, image in enumerate(dataset["images"]):
            where = f"{source}: images[{i}]"
            if not isinstance(image, Mapping) or "id" not in image:
                raise ValueError(f"{where}: an image needs an 'id'")
            for key in ("height", "width"):
                if not isinstance(image.get(key), int) or image[key] <= 0:
                    raise ValueError(
                        f"{where} (id {image['id']!r}): {key!r} must be a positive integer"
                    )
            _check_new_id(image["id"], image_sizes, where, "image id")
            image_sizes[image["id"]] = (image["height"], image["width"])
    cat_ids: set[Any] = set()
    for i, cat in enumerate(dataset["categories"]):
        if not isinstance(cat, Mapping) or "id" not in cat or "name" not in cat:
            raise ValueError(f"{source}: categories[{i}] needs an 'id' and a 'name'")
        _check_new_id(cat["id"], cat_ids, f"{source}: categories[{i}]", "category id")
        cat_ids.add(cat["id"])
    return image_sizes, cat_ids


@dataclass
class AnnotationColumns:
    """The checked annotations' fields as columns (what hotcoco's `COCO.from_arrays` takes).

    Attributes:
        ids, image_ids, category_ids: N ids each, as in the file.
        boxes: (N, 4) float64 [x, y, w, h] pixels.
        areas: (N,) float64.
        iscrowd: (N,) int64, 0 or 1 (0 where the annotation has none).
    """

    ids: Sequence[Any]
    image_ids: Sequence[Any]
    category_ids: Sequence[Any]
    boxes: np.ndarray
    areas: np.ndarray
    iscrowd: np.ndarray


def _fast_columns(annotations: list, image_ids: Set, cat_ids: set) -> AnnotationColumns | None:
    """The fast check of every annotation at once; None means: look one by one."""
    if not annotations:
        return _columns_of(annotations)
    try:  # the columns at once; one by one only to say what is wrong
        ids, images, cats, boxes, areas = columns(annotations, _ANNOTATION_FIELDS)
        iscrowd = column_or(annotations, "iscrowd", 0)
        if not set(iscrowd) <= {0, 1}:
            return None
    except (KeyError, TypeError, AttributeError):  # a missing key, an unhashable value
        return None
    if len(set(ids)) != len(ids) or not set(images) <= image_ids or not set(cats) <= cat_ids:
        return None
    if not set(map(type, areas)) <= NUMBER_TYPES:
        return None
    area_array = np.array(areas, dtype=np.float64).reshape(len(areas))
    box_columns = box_array(boxes)
    if box_columns is None or not np.isfinite(area_array).all():
        return None
    crowd = np.array(iscrowd, dtype=np.int64).reshape(len(iscrowd))
    return AnnotationColumns(ids, images, cats, box_columns.reshape(-1, 4), area_array, crowd)


def check_gt_dataset(dataset: Any, source: str) -> tuple[AnnotationColumns, dict]:
    """Check a COCO instances ground-truth dict (`images`, `categories`, `annotations`).

    Returns:
        The annotations as columns (empty without annotations), and each image's id ->
        (height, width).

    Raises:
        ValueError: naming `source`, the entry and the field at fault.
    """
    if not isinstance(dataset, Mapping):
        raise ValueError(
            f"{source}: a COCO ground truth is a JSON object, got {type(dataset).__name__}"
        )
    image_sizes, cat_ids = _check_images_and_categories(dataset, source)
    image_ids = image_sizes.keys()
    annotations = dataset.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{source}: 'annotations' must be a list")
    columns = _fast_columns(annotations, image_ids, cat_ids)
    if columns is not None:
        return columns, image_sizes
    ann_ids = set()
    for i, ann in enumerate(annotations):
        where = f"{source}: annotations[{i}]"
        if not isinstance(ann, Mapping):
            raise ValueError(f"{where}: an annotation is a JSON object")
        for key in ("id", "image_id", "category_id", "bbox", "area"):
            if key not in ann:
                raise ValueError(f"{where}: missing {key!r}")
        if ann["id"] in ann_ids:
            raise ValueError(f"{where}: annotation id {ann['id']!r} appears twice")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in image_ids:
            raise ValueError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
        if ann["category_id"] not in cat_ids:
            raise ValueError(f"{where}: category_id {ann['category_id']!r} is not in 'categories'")
        check_box(ann["bbox"], where)
        if not is_number(ann["area"]):
            raise ValueError(f"{where}: 'area' must be a finite number, got {ann['area']!r}")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise ValueError(f"{where}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
    return _columns_of(annotations), image_sizes  # all is well after all (other number types)


def _columns_of(annotations: list) -> AnnotationColumns:
    """The columns of checked annotations, field by field."""
    n = len(annotations)
    ids, images, cats, boxes, areas = columns(annotations, _ANNOTATION_FIELDS)
    return AnnotationColumns(
        ids,
        images,
        cats,
        np.array(boxes, dtype=np.float64).reshape(n, 4),
        np.array(areas, dtype=np.float64).reshape(n),
        np.array(column_or(annotations, "iscrowd", 0), dtype=np.int64).reshape(n),
    )


def _polygons_ok(polygon_sets: Sequence[list]) -> bool:
    """Whether all are lists of [x, y, ...] lists of even length, every coordinate a finite
    number: checked at once (a sum of finite numbers is finite; a NaN, an infinity or a value
    that is not a number makes it NaN, infinite or a TypeError). False may be a false alarm
    (finite numbers whose sum overflows): `_polygon_set_ok` decides."""
    polygons = list(itertools.chain.from_iterable(polygon_sets))
    if not set(map(type, polygons)) <= {list}:
        return False
    lengths = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons))
    if (lengths % 2).any():
        return False
    try:
        return math.isfinite(sum(map(sum, polygons), 0.0))  # (polygon by polygon: faster)
    except (TypeError, OverflowError):
        return False


def _finite_real(value: Any) -> bool:
    try:
        return isinstance(value, numbers.Real) and math.isfinite(value)
    except OverflowError:  # an integer beyond float64
        return False


def _polygon_set_ok(polygons: Any) -> bool:
    """One annotation's polygons, coordinate by coordinate."""
    return all(type(p) is list and len(p) % 2 == 0 and all(map(_finite_real, p)) for p in polygons)


_SEGMENTATION = operator.itemgetter("segmentation")


def check_gt_segmentations(
    dataset: Mapping, source: str, image_sizes: Mapping[Any, tuple[int, int]]
) -> list[Any]:
    """Check that every annotation has a usable `segmentation` (needed for mask AP).

    `image_sizes`: image id -> (height, width), as `check_gt_dataset` returns them.

    Returns:
        The N segmentations (the annotations' own objects: read them, never modify them).
    """
    annotations = dataset.get("annotations", [])
    try:
        segms = list(map(_SEGMENTATION, annotations))
    except KeyError:
        i = next(i for i, ann in enumerate(annotations) if "segmentation" not in ann)
        raise ValueError(
            f"{source}: annotations[{i}] has no 'segmentation' (needed for segm)"
        ) from None
    # (N,) True where the segmentation is polygons: a pass at C speed, no loop in Python
    is_polygons = list(map(operator.is_, map(type, segms), itertools.repeat(list)))
    all_polygons = all(is_polygons)
    polygon_sets = segms if all_polygons else list(itertools.compress(segms, is_polygons))
    if not _polygons_ok(polygon_sets):
        for i, segm in enumerate(segms):
            if type(segm) is list and not _polygon_set_ok(segm):
                raise ValueError(
                    f"{source}: annotations[{i}]: 'segmentation': polygons must be lists of "
                    "x, y numbers (finite)"
                )
    if all_polygons:
        return segms
    compressed, compressed_sizes, where = [], [], []
    uncompressed, uncompressed_where = [], []
    others = itertools.compress(range(len(segms)), map(operator.not_, is_polygons))
    for i in others:
        segm = segms[i]
        if not isinstance(segm, Mapping) or not {"size", "counts"} <= segm.keys():
            raise ValueError(
                f"{source}: annotations[{i}]: 'segmentation' must be polygons (a list) or RLE "
                "(a dict with size, counts)"
            )
        h, w = image_sizes[annotations[i]["image_id"]]
        try:
            check_rle_size(segm, h, w, uncompressed_runs=False)
        except ValueError as e:
            raise ValueError(f"{source}: annotations[{i}]: 'segmentation': {e}") from None
        if isinstance(segm["counts"], (str, bytes)):
            compressed.append(segm)
            compressed_sizes.append((h, w))
            where.append(i)
        else:
            uncompressed.append(segm)
            uncompressed_where.append(i)
    areas = [h * w for h, w in (segm["size"] for segm in uncompressed)]
    if not uncompressed_rles_ok([segm["counts"] for segm in uncompressed], areas):
        for i, segm in zip(uncompressed_where, uncompressed):
            try:
                check_rle_size(segm, *segm["size"])
            except ValueError as e:
                raise ValueError(f"{source}: annotations[{i}]: 'segmentation': {e}") from None
    for k in check_compressed_rles(compressed, compressed_sizes).nonzero()[0]:
        raise ValueError(f"{source}: annotations[{where[k]}]: 'segmentation' is a malformed RLE")
    return segms


def check_gt_keypoints(dataset: Mapping, source: str, num_keypoints: int) -> None:
    """Check that every annotation has `keypoints` (3 * `num_keypoints` numbers: x, y,
    visibility) and `num_keypoints` (needed for keypoint AP)."""
    for i, ann in enumerate(dataset.get("annotations", [])):
        where = f"{source}: annotations[{i}]"
        points = ann.get("keypoints")
        if not isinstance(points, list) or len(points) != 3 * num_keypoints:
            raise ValueError(
                f"{where}: 'keypoints' must be a list of {3 * num_keypoints} numbers "
                f"({num_keypoints} x, y, visibility triplets; needed for keypoint AP)"
            )
        if not set(map(type, points)) <= NUMBER_TYPES or not all(map(math.isfinite, points)):
            raise ValueError(f"{where}: 'keypoints' must be finite numbers")
        if not isinstance(ann.get("num_keypoints"), int):
            raise ValueError(f"{where}: 'num_keypoints' must be an integer")

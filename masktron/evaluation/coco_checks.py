"""Checks of COCO ground truth and results before they reach pycocotools or faster-coco-eval.

Both libraries assume well-formed input: a missing key is a `KeyError` deep inside them, a result
on an unknown image an `AssertionError` without the id, a malformed RLE an endless loop. Here every
problem becomes a `ValueError` naming the file, the entry and the field.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from masktron.evaluation.rle import check_compressed_rles, to_compressed_rle

_SHOW = 8  # how many offending ids an error message lists


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{os.fspath(path)}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not a valid JSON file ({e})") from None


def _ids(values: Iterable[Any]) -> str:
    values = sorted(set(values), key=str)
    shown = ", ".join(repr(v) for v in values[:_SHOW])
    return f"[{shown}{', ...' if len(values) > _SHOW else ''}] ({len(values)} distinct)"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_box(box: Any, where: str) -> list[float]:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(map(_is_number, box)):
        raise ValueError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
    if box[2] < 0 or box[3] < 0:
        raise ValueError(f"{where}: 'bbox' [x, y, w, h] has a negative size: {box!r}")
    return [float(v) for v in box]


def _check_boxes(results: list[dict[str, Any]], source: str) -> None:
    """All boxes at once (numpy); one by one only to name the first bad one."""
    boxes = [r["bbox"] for r in results if "bbox" in r]
    try:
        array = np.array(boxes, dtype=np.float64).reshape(len(boxes), 4)
        ok = all(isinstance(b, (list, tuple)) for b in boxes)
        ok = ok and bool(np.isfinite(array).all() and (array[:, 2:] >= 0).all())
    except (ValueError, TypeError):
        ok = False
    if not ok:
        for i, r in enumerate(results):
            if "bbox" in r:
                _check_box(r["bbox"], f"{source}: result #{i}")
    for r, box in zip((r for r in results if "bbox" in r), array.tolist() if ok else []):
        r["bbox"] = box


def check_gt_dataset(dataset: Any, source: str) -> None:
    """Check a COCO instances ground-truth dict (`images`, `categories`, `annotations`).

    Raises:
        ValueError: naming `source`, the entry and the field at fault.
    """
    if not isinstance(dataset, Mapping):
        raise ValueError(
            f"{source}: a COCO ground truth is a JSON object, got {type(dataset).__name__}"
        )
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            raise ValueError(f"{source}: missing the list {key!r} of a COCO ground truth")
    image_ids = set()
    for i, image in enumerate(dataset["images"]):
        where = f"{source}: images[{i}]"
        if not isinstance(image, Mapping) or "id" not in image:
            raise ValueError(f"{where}: an image needs an 'id'")
        for key in ("height", "width"):
            if not isinstance(image.get(key), int) or image[key] <= 0:
                raise ValueError(
                    f"{where} (id {image['id']!r}): {key!r} must be a positive integer"
                )
        if image["id"] in image_ids:
            raise ValueError(f"{where}: image id {image['id']!r} appears twice")
        image_ids.add(image["id"])
    cat_ids = set()
    for i, cat in enumerate(dataset["categories"]):
        if not isinstance(cat, Mapping) or "id" not in cat or "name" not in cat:
            raise ValueError(f"{source}: categories[{i}] needs an 'id' and a 'name'")
        if cat["id"] in cat_ids:
            raise ValueError(f"{source}: category id {cat['id']!r} appears twice")
        cat_ids.add(cat["id"])
    annotations = dataset.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{source}: 'annotations' must be a list")
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
        _check_box(ann["bbox"], where)
        if not _is_number(ann["area"]):
            raise ValueError(f"{where}: 'area' must be a finite number, got {ann['area']!r}")


def check_gt_segmentations(dataset: Mapping, source: str) -> None:
    """Check that every annotation has a usable `segmentation` (needed for mask AP)."""
    sizes = {image["id"]: (image["height"], image["width"]) for image in dataset["images"]}
    compressed, compressed_sizes, where = [], [], []
    for i, ann in enumerate(dataset.get("annotations", [])):
        h, w = sizes[ann["image_id"]]
        if "segmentation" not in ann:
            raise ValueError(f"{source}: annotations[{i}] has no 'segmentation' (needed for segm)")
        segm = ann["segmentation"]
        if isinstance(segm, Mapping) and isinstance(segm.get("counts"), (str, bytes)):
            if list(segm.get("size", ())) != [h, w]:
                raise ValueError(f"{source}: annotations[{i}]: RLE size is not the image's [h, w]")
            compressed.append(segm)
            compressed_sizes.append((h, w))
            where.append(i)
        else:
            try:
                to_compressed_rle(segm, h, w) if isinstance(segm, Mapping) else _check_polygons(
                    segm
                )
            except ValueError as e:
                raise ValueError(f"{source}: annotations[{i}]: 'segmentation': {e}") from None
    for k in check_compressed_rles(compressed, compressed_sizes).nonzero()[0]:
        raise ValueError(f"{source}: annotations[{where[k]}]: 'segmentation' is a malformed RLE")


def _check_polygons(segm: Any) -> None:
    # pycocotools accepts an empty polygon list (an empty mask) in ground truth
    if not isinstance(segm, list) or not all(
        isinstance(p, list) and len(p) % 2 == 0 and all(map(_is_number, p)) for p in segm
    ):
        raise ValueError("polygons must be lists of x, y numbers")


def check_detections(
    results: Any,
    *,
    image_sizes: Mapping[Any, tuple[int, int]],
    cat_ids: Iterable[Any],
    iou_type: str,
    source: str,
) -> list[dict[str, Any]]:
    """Check COCO results and return clean copies that the COCO tools may modify freely.

    Args:
        results: a list of COCO result dicts (`image_id`, `category_id`, `score`, and `bbox`
            [x, y, w, h] in pixels and/or `segmentation` as RLE or polygons).
        image_sizes: ground-truth image id -> (height, width).
        cat_ids: the ground truth's category ids.
        iou_type: "bbox" or "segm".
        source: the file (or a description) the results came from, for error messages.

    Returns:
        New dicts holding only the keys evaluation reads; segmentations as compressed RLE with
        str counts. The caller's dicts are not modified.
    """
    if not isinstance(results, list):
        raise ValueError(
            f"{source}: COCO results are a JSON list of dicts, got {type(results).__name__}"
        )
    cat_ids = set(cat_ids)
    clean: list[dict[str, Any]] = []
    bad_images, bad_cats, with_box = [], [], 0
    for i, r in enumerate(results):
        where = f"{source}: result #{i}"
        if not isinstance(r, Mapping):
            raise ValueError(f"{where}: a result is a dict, got {type(r).__name__}")
        for key in ("image_id", "category_id", "score"):
            if key not in r:
                raise ValueError(f"{where}: missing {key!r}")
        if not _is_number(r["score"]):
            raise ValueError(f"{where}: 'score' must be a finite number, got {r['score']!r}")
        out = {
            "image_id": r["image_id"],
            "category_id": r["category_id"],
            "score": float(r["score"]),
        }
        if r["image_id"] not in image_sizes:
            bad_images.append(r["image_id"])
            continue
        if r["category_id"] not in cat_ids:
            bad_cats.append(r["category_id"])
            continue
        if "bbox" in r:
            out["bbox"] = r["bbox"]
            with_box += 1
        elif iou_type == "bbox":
            raise ValueError(f"{where}: missing 'bbox' (needed for box AP)")
        if iou_type == "segm":
            if "segmentation" not in r:
                raise ValueError(f"{where}: missing 'segmentation' (needed for mask AP)")
            h, w = image_sizes[r["image_id"]]
            try:
                out["segmentation"] = to_compressed_rle(r["segmentation"], h, w)
            except ValueError as e:
                raise ValueError(
                    f"{where} (image {r['image_id']!r}): 'segmentation': {e}"
                ) from None
        clean.append(out)
    if bad_images:
        raise ValueError(
            f"{source}: {len(bad_images)} results are on images not in the ground truth: "
            f"image_id {_ids(bad_images)}"
        )
    if bad_cats:
        raise ValueError(
            f"{source}: {len(bad_cats)} results have a category_id not in the ground truth's "
            f"categories: {_ids(bad_cats)}"
        )
    _check_boxes(clean, source)
    if iou_type == "segm":
        if 0 < with_box < len(clean):
            # pycocotools takes every result's area from its box when the first one has a box
            raise ValueError(
                f"{source}: some results have a 'bbox' and some do not; give all or none"
            )
        sizes = [image_sizes[r["image_id"]] for r in clean]
        for k in check_compressed_rles([r["segmentation"] for r in clean], sizes).nonzero()[0]:
            raise ValueError(
                f"{source}: result #{k} (image {clean[k]['image_id']!r}): 'segmentation' is a "
                "malformed RLE (its counts do not decode to the image's height*width pixels)"
            )
    return clean

"""Checks of COCO results (detections) before they reach an evaluation engine.

The results come from users and models: every problem becomes a `ValueError` naming the file
(or `source`), the result's index and the field. Checks run over whole columns at once; the
entries are walked one by one only to name the first bad one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from masktron.evaluation.coco_checks import (
    NUMBER_TYPES,
    box_array,
    check_box,
    column_or,
    columns,
    is_number,
    list_ids,
)
from masktron.evaluation.rle import check_compressed_rles, to_compressed_rle

_KEYS = ("image_id", "category_id", "score")
# Results numbered 1..N by a tool that did not know the ground truth land on other images.
_SIZE_HINT = (
    ". The results' image_id must be the ground truth's id of the same image: were they "
    "written for this ground truth (masktron predict --gt GT.json writes its ids)?"
)


@dataclass
class CheckedResults:
    """Checked COCO results as columns, ready for an engine's `loadRes`.

    Attributes:
        image_ids, category_ids: N ids, as in the ground truth.
        scores: (N,) float64.
        boxes: (N, 4) float64 [x, y, w, h] pixels, or None when the results carry no boxes.
        segmentations: N compressed RLEs {"size": [h, w], "counts": str}, or None (possibly
            the caller's dicts: read them, never modify them).
        keypoints: (N, 3K) float64 x, y, score triplets in pixels, or None.
        masks_source: set by `check_detections(..., defer_masks=True)`: the compressed RLE
            strings are not checked yet; `check_masks` must run before anything trusts them.
    """

    image_ids: list[Any]
    category_ids: list[Any]
    scores: np.ndarray
    boxes: np.ndarray | None = None
    segmentations: list[dict[str, Any]] | None = None
    keypoints: np.ndarray | None = None
    masks_source: str | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def check_masks(self) -> None:
        """Check the deferred RLE strings (nothing to do when none are deferred)."""
        if self.masks_source is None or self.segmentations is None:
            return
        for k in check_compressed_rles(self.segmentations).nonzero()[0]:
            raise ValueError(_malformed(self.masks_source, int(k), self.image_ids[k]))
        self.masks_source = None

    def to_dicts(self) -> list[dict[str, Any]]:
        """COCO result dicts with only the checked fields (new objects, free to modify)."""
        out = []
        for k in range(len(self)):
            d: dict[str, Any] = {
                "image_id": self.image_ids[k],
                "category_id": self.category_ids[k],
                "score": float(self.scores[k]),
            }
            if self.boxes is not None:
                d["bbox"] = self.boxes[k].tolist()
            if self.segmentations is not None:
                d["segmentation"] = dict(self.segmentations[k])
            if self.keypoints is not None:
                d["keypoints"] = self.keypoints[k].tolist()
            out.append(d)
        return out


def _first_bad(results: list, source: str, test: Any, message: str) -> None:
    """Raise `message` for the first result (index, dict) where `test` fails."""
    for i, r in enumerate(results):
        if not test(r):
            raise ValueError(f"{source}: result #{i}{message}")


def _columns(results: list, source: str) -> tuple[list, list, list]:
    if not results:
        return [], [], []
    try:  # the columns at once; one by one only to say what is wrong
        image_ids, category_ids, scores = columns(results, _KEYS)
        return image_ids, category_ids, scores
    except (KeyError, TypeError, IndexError):
        pass
    for i, r in enumerate(results):
        if not isinstance(r, Mapping):
            raise ValueError(f"{source}: result #{i}: a result is a dict, got {type(r).__name__}")
        for key in _KEYS:
            if key not in r:
                raise ValueError(f"{source}: result #{i}: missing {key!r}")
    raise AssertionError("unreachable")  # pragma: no cover


def _check_ids(image_ids: list, category_ids: list, image_sizes: Mapping, cat_ids: set, source):
    try:
        bad_images = [i for i in image_ids if i not in image_sizes]
        bad_cats = [c for c in category_ids if c not in cat_ids]
    except TypeError:  # an unhashable id (a list, a dict)
        raise ValueError(
            f"{source}: every 'image_id' and 'category_id' must be a number or a string"
        ) from None
    if bad_images:
        raise ValueError(
            f"{source}: {len(bad_images)} results are on images not in the ground truth: "
            f"image_id {list_ids(bad_images)}"
        )
    if bad_cats:
        raise ValueError(
            f"{source}: {len(bad_cats)} results have a category_id not in the ground truth's "
            f"categories: {list_ids(bad_cats)}"
        )


def _check_boxes(results: list, iou_type: str, source: str) -> np.ndarray | None:
    boxes = column_or(results, "bbox")
    with_box = len(boxes) - boxes.count(None)
    if iou_type == "bbox" and with_box < len(boxes):
        _first_bad(results, source, lambda r: "bbox" in r, ": missing 'bbox' (needed for box AP)")
    if with_box == 0:
        return None
    if with_box < len(boxes):
        # pycocotools takes every result's area from its box when the first one has a box
        raise ValueError(f"{source}: some results have a 'bbox' and some do not; give all or none")
    array = box_array(boxes)
    if array is None:
        array = np.array([check_box(box, f"{source}: result #{i}") for i, box in enumerate(boxes)])
    return array.reshape(len(boxes), 4)


def _usual_counts(segms: list, image_ids: list, image_sizes: Mapping) -> list | None:
    """The `counts` if all are {"size": [h, w] of their image, "counts": str} (checked at
    once), else None."""
    if not set(map(type, segms)) <= {dict}:
        return None
    try:
        given, counts = columns(segms, ("size", "counts"))
    except KeyError:
        return None
    if not set(map(type, counts)) <= {str} or not set(map(type, given)) <= {list}:
        return None
    size_lists = {image_id: list(size) for image_id, size in image_sizes.items()}
    return counts if given == list(map(size_lists.__getitem__, image_ids)) else None


def _malformed(source: str, k: int, image_id: Any) -> str:
    return (
        f"{source}: result #{k} (image {image_id!r}): 'segmentation' is a malformed RLE "
        "(a character outside the format, a run cut short, or runs past height*width pixels)"
    )


def _check_segmentations(
    results: list, image_ids: list, image_sizes: Mapping, source: str, strings: bool = True
) -> list[dict[str, Any]]:
    segms = column_or(results, "segmentation")
    counts = _usual_counts(segms, image_ids, image_sizes)
    if counts is not None:
        rles = segms  # read, never modified
    else:
        rles = []
        for i, segm in enumerate(segms):
            where = f"{source}: result #{i} (image {image_ids[i]!r})"
            if segm is None:
                raise ValueError(f"{where}: missing 'segmentation' (needed for mask AP)")
            try:
                rles.append(to_compressed_rle(segm, *image_sizes[image_ids[i]]))
            except ValueError as e:
                hint = _SIZE_HINT if "is not the image's" in str(e) else ""
                raise ValueError(f"{where}: 'segmentation': {e}{hint}") from None
    if strings:
        for k in check_compressed_rles(rles, counts=counts).nonzero()[0]:
            raise ValueError(_malformed(source, int(k), image_ids[k]))
    return rles


def _check_keypoints(results: list, num_keypoints: int | None, source: str) -> np.ndarray:
    points = [r.get("keypoints") for r in results]
    width = 3 * num_keypoints if num_keypoints else (len(points[0] or ()) if points else 0)
    message = f": 'keypoints' must be {width} finite numbers (x, y, score per keypoint)"
    ok = set(map(type, points)) <= {list, tuple}
    if ok:
        try:
            array = np.array(points, dtype=np.float64).reshape(len(points), width)
            ok = bool(np.isfinite(array).all()) and width > 0
        except (ValueError, TypeError):
            ok = False
    if not ok:
        _first_bad(
            results,
            source,
            lambda r: (
                isinstance(r.get("keypoints"), (list, tuple))
                and len(r["keypoints"]) == width
                and all(map(is_number, r["keypoints"]))
            ),
            message,
        )
        raise ValueError(f"{source}{message}")
    return array


def check_detections(
    results: Any,
    *,
    image_sizes: Mapping[Any, tuple[int, int]],
    cat_ids: Any,
    iou_type: str,
    source: str,
    num_keypoints: int | None = None,
    defer_masks: bool = False,
) -> CheckedResults:
    """Check COCO results; return them as columns. The caller's dicts are not modified.

    Args:
        results: a list of COCO result dicts: `image_id`, `category_id`, `score`, and `bbox`
            [x, y, w, h] in pixels, `segmentation` (RLE or polygons), `keypoints` as needed.
        image_sizes: ground-truth image id -> (height, width).
        cat_ids: the ground truth's category ids.
        iou_type: "bbox", "segm" or "keypoints".
        source: the file (or a description) the results came from, for error messages.
        num_keypoints: K, the ground truth's keypoints per instance (for "keypoints").
        defer_masks: leave the check of the compressed RLE strings (their characters and
            hotcoco's decoding of their runs, the slowest check) to
            `CheckedResults.check_masks`, for a caller that overlaps it with work that reads
            them safely (`coco_engine.run_cocoeval` does).
    """
    if not isinstance(results, list):
        raise ValueError(
            f"{source}: COCO results are a JSON list of dicts, got {type(results).__name__}"
        )
    image_ids, category_ids, scores = _columns(results, source)
    plain = set(map(type, scores)) <= NUMBER_TYPES  # (else maybe numpy scalars: checked below)
    score_array = np.array(scores, dtype=np.float64) if plain else None
    if score_array is None or not np.isfinite(score_array).all():
        _first_bad(
            results,
            source,
            lambda r: is_number(r["score"]),
            ": 'score' must be a finite number",
        )
        score_array = np.array(scores, dtype=np.float64)
    _check_ids(image_ids, category_ids, image_sizes, set(cat_ids), source)
    checked = CheckedResults(image_ids, category_ids, score_array)
    checked.boxes = _check_boxes(results, iou_type, source)
    if iou_type == "segm":
        checked.segmentations = _check_segmentations(
            results, image_ids, image_sizes, source, strings=not defer_masks
        )
        checked.masks_source = source if defer_masks else None
    if iou_type == "keypoints":
        checked.keypoints = _check_keypoints(results, num_keypoints, source)
    return checked

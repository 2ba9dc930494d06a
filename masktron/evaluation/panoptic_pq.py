"""Panoptic quality (PQ, SQ, RQ) by the COCO panoptic rules: panopticapi's `pq_compute` on hotcoco.

hotcoco's panoptic evaluator (checked against panopticapi by its authors, and here against the
figures of masktron's own former implementation) matches segments and reads the PNGs. The checks
of the JSON files stay ours (structure, duplicate segment ids, images without a prediction);
hotcoco names the image and the segment when a PNG disagrees with its JSON (a segment in one and
not the other, an unknown category, another size, not RGB), and masktron adds the file.

The rules: a prediction matches a ground-truth segment of the same category when IoU > 0.5;
ground-truth VOID pixels leave the union; crowd segments are neither matched nor missed; an
unmatched prediction lying more than half on VOID or on a crowd region of its category is not a
false positive; means are over the categories with TP + FP + FN > 0.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from masktron.evaluation.coco_checks import read_json
from masktron.evaluation.engine import require_hotcoco

VOID = 0
_GROUPS = ("All", "Things", "Stuff")


def rgb_to_id(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 COCO panoptic PNG -> (H, W) int64 ids: R + 256 G + 256^2 B."""
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 65536 * color[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) int ids in [0, 2^24) -> (H, W, 3) uint8, the inverse of `rgb_to_id`."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def read_panoptic_png(path: str) -> np.ndarray:
    """A COCO panoptic PNG as (H, W) int64 segment ids; errors name the file."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("RGB", "RGBA"):
                raise ValueError(
                    f"{path}: a panoptic PNG is RGB (ids R + 256 G + 256^2 B), not {image.mode}"
                )
            return rgb_to_id(np.asarray(image.convert("RGB")))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: panoptic PNG not found") from None
    except OSError as e:
        raise OSError(f"{path}: cannot read the panoptic PNG ({e})") from None


def check_panoptic_json(data: Any, path: str, *, ground_truth: bool) -> None:
    """Check a COCO panoptic JSON's structure (not its PNGs); errors name file, image, field."""
    if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: a COCO panoptic JSON needs a list 'annotations'")
    if ground_truth and not isinstance(data.get("categories"), list):
        raise ValueError(f"{path}: missing the list 'categories'")
    keys = ("id", "category_id", "area") if ground_truth else ("id", "category_id")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, Mapping) or "image_id" not in ann or "file_name" not in ann:
            raise ValueError(f"{path}: annotations[{i}] needs an 'image_id' and a 'file_name'")
        where = f"{path}: image {ann['image_id']!r}"
        segments = ann.get("segments_info")
        if not isinstance(segments, list):
            raise ValueError(f"{where}: segments_info must be a list")
        seen = set()
        for k, seg in enumerate(segments):
            missing = [key for key in keys if not isinstance(seg, Mapping) or key not in seg]
            if missing:
                raise ValueError(f"{where}: segments_info[{k}] lacks {', '.join(missing)}")
            if seg["id"] in seen:
                raise ValueError(f"{where}: segment id {seg['id']} appears twice in segments_info")
            seen.add(seg["id"])


def _panopticapi_layout(res: Mapping[str, Any]) -> tuple[dict[str, Any], set[int]]:
    """hotcoco's result in panopticapi's layout (per-class figures of absent categories 0),
    and the categories that occur (TP + FP + FN > 0)."""
    out: dict[str, Any] = {
        group: {k: (int(v) if k == "n" else float(v)) for k, v in res[group].items()}
        for group in _GROUPS
    }
    out["per_class"] = {
        int(cat): {k: max(float(v[k]), 0.0) for k in ("pq", "sq", "rq")}
        for cat, v in res["per_class"].items()
    }
    occurring = {int(cat) for cat, v in res["per_class"].items() if v["tp"] + v["fp"] + v["fn"] > 0}
    return out, occurring


def pq_compute(
    gt_json_file: str | os.PathLike,
    pred_json_file: str | os.PathLike,
    gt_folder: str | os.PathLike | None = None,
    pred_folder: str | os.PathLike | None = None,
    *,
    num_workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """PQ of COCO panoptic predictions (JSON + PNG folder) against the ground truth.

    Args:
        gt_json_file, pred_json_file: COCO panoptic JSON files (`annotations` with `image_id`,
            `file_name`, `segments_info`; the ground truth's `categories` with `isthing`).
        gt_folder, pred_folder: their PNG folders; default: the JSON path without ".json".
        num_workers, progress: kept for compatibility; hotcoco reads the images in parallel
            threads of its own and shows no progress bar.

    Returns:
        panopticapi's layout: {"All", "Things", "Stuff": {"pq", "sq", "rq", "n"},
        "per_class": {category_id: {"pq", "sq", "rq"}}}, fractions in 0..1 (0 for a category
        that never occurs).

    Raises:
        ValueError: malformed JSON, an image without a prediction, a PNG that disagrees with
            its JSON (naming the file, the image and the segment). FileNotFoundError.
    """
    del num_workers, progress
    return pq_with_occurring(gt_json_file, pred_json_file, gt_folder, pred_folder)[0]


def pq_with_occurring(
    gt_json_file: str | os.PathLike,
    pred_json_file: str | os.PathLike,
    gt_folder: str | os.PathLike | None = None,
    pred_folder: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], set[int]]:
    """`pq_compute`'s figures and the category ids that occur (TP + FP + FN > 0)."""
    hotcoco = require_hotcoco("pq_compute")
    gt_json_file, pred_json_file = os.fspath(gt_json_file), os.fspath(pred_json_file)
    gt_json, pred_json = read_json(gt_json_file), read_json(pred_json_file)
    gt_folder = os.fspath(gt_folder) if gt_folder else os.path.splitext(gt_json_file)[0]
    pred_folder = os.fspath(pred_folder) if pred_folder else os.path.splitext(pred_json_file)[0]
    for folder, what in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: the folder of {what} PNGs does not exist")
    check_panoptic_json(gt_json, gt_json_file, ground_truth=True)
    check_panoptic_json(pred_json, pred_json_file, ground_truth=False)
    predicted = {a["image_id"] for a in pred_json["annotations"]}
    for gt_ann in gt_json["annotations"]:
        if gt_ann["image_id"] not in predicted:
            raise ValueError(f"{pred_json_file}: no prediction for image id {gt_ann['image_id']!r}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # hotcoco prints panopticapi's table
            res = hotcoco.panoptic.pq_compute(gt_json_file, pred_json_file, gt_folder, pred_folder)
    except ValueError as e:
        raise ValueError(f"{pred_json_file} ({pred_folder}): {e}") from None
    return _panopticapi_layout(res)

"""Panoptic quality (PQ, SQ, RQ) by the COCO panoptic rules, and panopticapi's `pq_compute`.

The rules (Kirillov et al., "Panoptic Segmentation", 2019; COCO's panopticapi):
- a predicted and a ground-truth segment of the same category match when their IoU > 0.5 (so a
  segment matches at most once); pixels that are VOID (id 0) in the ground truth are left out of
  the prediction's area in the union;
- crowd ground-truth segments are never matched nor counted as missed;
- an unmatched prediction is a false positive unless more than half of it lies on VOID pixels or
  on crowd regions of its own category;
- PQ = sum(IoU of matches) / (TP + FP/2 + FN/2), SQ = sum(IoU) / TP, RQ = TP / (TP + FP/2 + FN/2)
  per category; averaged over the categories that occur (TP + FP + FN > 0).
Ground-truth areas are the JSON's `area` fields and prediction areas are counted from the PNG, as
in panopticapi. One deliberate difference: where a category has several crowd segments in one
image, all of them count (panopticapi keeps only the last one listed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from masktron.evaluation.coco_checks import read_json

VOID = 0
_GROUPS = (("All", None), ("Things", True), ("Stuff", False))


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


class PQStat:
    """Per-category sums over images: IoU of matches, TP, FP, FN."""

    def __init__(self) -> None:
        self.per_cat: dict[Any, np.ndarray] = {}  # category id -> [iou, tp, fp, fn]

    def add(self, cat: Any, iou: float = 0.0, tp: int = 0, fp: int = 0, fn: int = 0) -> None:
        self.per_cat[cat] = self.per_cat.get(cat, np.zeros(4)) + (iou, tp, fp, fn)

    def __iadd__(self, other: PQStat) -> PQStat:
        for cat, values in other.per_cat.items():
            self.add(cat, *values)
        return self

    def average(
        self, categories: Mapping[Any, Mapping], isthing: bool | None
    ) -> tuple[dict[str, float], dict[Any, dict[str, float]]]:
        """Mean PQ/SQ/RQ (fractions) over `categories` of one kind; and per-category values.

        Categories with no TP, FP or FN are left out of the mean and get zeros, as in
        panopticapi; with none left the means are 0 and `n` is 0.
        """
        totals, per_class, n = np.zeros(3), {}, 0
        for cat, info in categories.items():
            if isthing is not None and (info.get("isthing") == 1) != isthing:
                continue
            iou, tp, fp, fn = self.per_cat[cat] if cat in self.per_cat else np.zeros(4)
            if tp + fp + fn == 0:
                per_class[cat] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            denominator = tp + 0.5 * fp + 0.5 * fn
            values = (iou / denominator, iou / tp if tp else 0.0, tp / denominator)
            per_class[cat] = dict(zip(("pq", "sq", "rq"), map(float, values)))
            totals += values
        means = totals / n if n else totals
        return {
            "pq": float(means[0]),
            "sq": float(means[1]),
            "rq": float(means[2]),
            "n": n,
        }, per_class

    def results(self, categories: Mapping[Any, Mapping]) -> dict[str, Any]:
        """panopticapi's layout: All / Things / Stuff means and `per_class`."""
        out: dict[str, Any] = {}
        for name, isthing in _GROUPS:
            out[name], per_class = self.average(categories, isthing)
            if isthing is None:
                out["per_class"] = per_class
        return out


def _check_segments(segments: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(segments, (list, tuple)):
        raise ValueError(f"{where}: segments_info must be a list")
    for k, seg in enumerate(segments):
        missing = [key for key in keys if not isinstance(seg, Mapping) or key not in seg]
        if missing:
            raise ValueError(f"{where}: segments_info[{k}] lacks {', '.join(missing)}")


def pq_image_stats(
    gt_ids: np.ndarray,
    gt_segments: Sequence[Mapping],
    pred_ids: np.ndarray,
    pred_segments: Sequence[Mapping],
    categories: Mapping[Any, Any],
    where: str = "image",
) -> PQStat:
    """Matches, false positives and misses of one image.

    Args:
        gt_ids, pred_ids: (H, W) integer segment ids; 0 is VOID.
        gt_segments: dicts with `id`, `category_id`, `iscrowd`, `area` (pixels).
        pred_segments: dicts with `id`, `category_id`: every id of `pred_ids` but 0, only those.
        categories: the known category ids (a prediction of another category is an error).
        where: names the image in error messages.
    """
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"{where}: prediction is {pred_ids.shape}, ground truth {gt_ids.shape}")
    _check_segments(gt_segments, ("id", "category_id", "area"), f"{where} (ground truth)")
    _check_segments(pred_segments, ("id", "category_id"), f"{where} (prediction)")
    gt_labels, gt_index = np.unique(gt_ids.ravel(), return_inverse=True)
    pred_labels, pred_index = np.unique(pred_ids.ravel(), return_inverse=True)
    # (G, P) pixel counts of every (gt id, pred id) pair present in the image
    inter = np.bincount(
        gt_index.ravel() * len(pred_labels) + pred_index.ravel(),
        minlength=len(gt_labels) * len(pred_labels),
    ).reshape(len(gt_labels), len(pred_labels))

    pred_col = {int(label): c for c, label in enumerate(pred_labels)}
    seen = set()
    for seg in pred_segments:
        sid = int(seg["id"])
        if sid in seen:
            raise ValueError(f"{where}: predicted segment id {sid} appears twice in segments_info")
        seen.add(sid)
        if sid not in pred_col:
            raise ValueError(f"{where}: predicted segment {sid} is in the JSON but not in the PNG")
        if seg["category_id"] not in categories:
            raise ValueError(
                f"{where}: predicted segment {sid} has unknown category_id {seg['category_id']}"
            )
    extra = [int(x) for x in pred_labels if int(x) != VOID and int(x) not in seen]
    if extra:
        raise ValueError(
            f"{where}: predicted segment ids {extra[:8]} are in the PNG but not the JSON"
        )

    cols = np.array([pred_col[int(s["id"])] for s in pred_segments], dtype=np.int64)
    pred_cat = [s["category_id"] for s in pred_segments]
    pred_area = inter.sum(axis=0)[cols].astype(np.float64)  # (P,)
    gt_row = {int(label): r for r, label in enumerate(gt_labels)}
    void = inter[gt_row[VOID], cols] if VOID in gt_row else np.zeros(len(cols), np.int64)  # (P,)
    # (S, P) intersections of the ground-truth segments listed in the JSON with the predictions
    rows = [gt_row.get(int(s["id"]), -1) for s in gt_segments]
    padded = np.concatenate([inter, np.zeros((1, inter.shape[1]), inter.dtype)])  # row -1 is empty
    seg_inter = padded[rows][:, cols].astype(np.float64).reshape(len(gt_segments), len(cols))
    gt_cat = [s["category_id"] for s in gt_segments]
    crowd = np.array([s.get("iscrowd", 0) == 1 for s in gt_segments], dtype=bool)
    gt_area = np.array([float(s["area"]) for s in gt_segments])
    same_cat = np.array([[g == p for p in pred_cat] for g in gt_cat], dtype=bool).reshape(
        len(gt_segments), len(cols)
    )

    union = pred_area[None, :] + gt_area[:, None] - seg_inter - void[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(seg_inter > 0, seg_inter / union, 0.0)
    match = (iou > 0.5) & same_cat & ~crowd[:, None]

    stat = PQStat()
    for g, p in zip(*np.nonzero(match)):
        stat.add(gt_cat[g], iou=float(iou[g, p]), tp=1)
    gt_matched, pred_matched = match.any(axis=1), match.any(axis=0)
    for g in np.flatnonzero(~gt_matched & ~crowd):
        stat.add(gt_cat[g], fn=1)
    # pixels of each prediction on VOID or on crowd regions of its own category
    ignored = void + (seg_inter * (same_cat & crowd[:, None])).sum(axis=0)
    for p in np.flatnonzero(~pred_matched):
        if ignored[p] / pred_area[p] > 0.5:
            continue
        stat.add(pred_cat[p], fp=1)
    return stat


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
        num_workers: threads reading and scoring images (default: up to 8).
        progress: show a progress bar.

    Returns:
        panopticapi's layout: {"All", "Things", "Stuff": {"pq", "sq", "rq", "n"},
        "per_class": {category_id: {"pq", "sq", "rq"}}}, fractions in 0..1.
    """
    gt_json_file, pred_json_file = os.fspath(gt_json_file), os.fspath(pred_json_file)
    gt_json, pred_json = read_json(gt_json_file), read_json(pred_json_file)
    gt_folder = os.fspath(gt_folder) if gt_folder else os.path.splitext(gt_json_file)[0]
    pred_folder = os.fspath(pred_folder) if pred_folder else os.path.splitext(pred_json_file)[0]
    for folder, what in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: the folder of {what} PNGs does not exist")
    for data, path in ((gt_json, gt_json_file), (pred_json, pred_json_file)):
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise ValueError(f"{path}: a COCO panoptic JSON needs a list 'annotations'")
    if not isinstance(gt_json.get("categories"), list):
        raise ValueError(f"{gt_json_file}: missing the list 'categories'")
    categories = {c["id"]: c for c in gt_json["categories"]}
    predictions = {a.get("image_id"): a for a in pred_json["annotations"]}
    pairs = []
    for gt_ann in gt_json["annotations"]:
        if gt_ann.get("image_id") not in predictions:
            raise ValueError(
                f"{pred_json_file}: no prediction for image id {gt_ann.get('image_id')!r}"
            )
        pairs.append((gt_ann, predictions[gt_ann["image_id"]]))

    def one(pair: tuple[dict, dict]) -> PQStat:
        gt_ann, pred_ann = pair
        where = f"{pred_json_file}: image {gt_ann['image_id']!r}"
        return pq_image_stats(
            read_panoptic_png(os.path.join(gt_folder, gt_ann["file_name"])),
            gt_ann["segments_info"],
            read_panoptic_png(os.path.join(pred_folder, pred_ann["file_name"])),
            pred_ann["segments_info"],
            categories,
            where,
        )

    total = PQStat()
    workers = num_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for stat in tqdm(pool.map(one, pairs), total=len(pairs), desc="PQ", disable=not progress):
            total += stat
    return total.results(categories)

"""Helpers of the evaluation tests: seeded noisy detections and pycocotools run live."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def load_gt(coco_sample: Path, split: str) -> tuple[str, dict]:
    path = str(coco_sample / "annotations" / f"instances_{split}2017.json")
    with open(path) as f:
        return path, json.load(f)


def noisy_detections(gt: dict, seed: int, *, ties: bool = False, crowd_of: int = 0) -> list[dict]:
    """COCO results made from the ground truth plus seeded noise.

    Per annotation (85% kept, 20% duplicated): a jittered box, the mask shifted and with pixels
    dropped, sometimes the wrong class; plus random false positives on every image. `ties`
    rounds scores to one decimal; `crowd_of` adds that many extra detections on the first image
    (to pass the 100 per image limit).
    """
    rng = np.random.default_rng(seed)
    images = {im["id"]: im for im in gt["images"]}
    cat_ids = [c["id"] for c in gt["categories"]]
    api = COCO()
    api.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()

    def rle(mask: np.ndarray) -> dict:
        r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": r["size"], "counts": r["counts"].decode("ascii")}

    def score() -> float:
        s = float(rng.random())
        return round(s, 1) if ties else s

    dets = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = ann["bbox"]
        with warnings.catch_warnings():  # pycocotools' decode and numpy 2's copy keyword
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = api.annToMask(ann)
        for _ in range(1 + int(rng.random() < 0.2)):
            jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
            box = [max(0.0, x + jitter[0]), max(0.0, y + jitter[1])]
            box += [max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
            step = max(1, int(min(w, h) // 15))
            dy, dx = (int(v) * step for v in rng.integers(-3, 4, 2))
            shifted = np.roll(mask, (dy, dx), axis=(0, 1))
            if rng.random() < 0.3:
                shifted = shifted * (rng.random(shifted.shape) < 0.9)
            cat = ann["category_id"] if rng.random() > 0.1 else int(rng.choice(cat_ids))
            dets.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": cat,
                    "bbox": [float(v) for v in box],
                    "score": score(),
                    "segmentation": rle(shifted),
                }
            )
    extra = {im_id: int(rng.integers(0, 8)) for im_id in images}
    extra[gt["images"][0]["id"]] += crowd_of
    for im_id, count in extra.items():
        h, w = images[im_id]["height"], images[im_id]["width"]
        for _ in range(count):
            x0, y0 = rng.random() * w * 0.8, rng.random() * h * 0.8
            bw, bh = rng.random() * (w - x0) + 1, rng.random() * (h - y0) + 1
            mask = np.zeros((h, w), np.uint8)
            mask[int(y0) : int(y0 + bh), int(x0) : int(x0 + bw)] = 1
            dets.append(
                {
                    "image_id": im_id,
                    "category_id": int(rng.choice(cat_ids)),
                    "bbox": [x0, y0, bw, bh],
                    "score": score(),
                    "segmentation": rle(mask),
                }
            )
    return dets


def pycocotools_reference(gt: dict, dets: list[dict], iou_type: str, img_ids=None) -> COCOeval:
    """pycocotools' own evaluation of `dets` (evaluate, accumulate, summarize), run live."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"]}
            coco_dt.dataset["annotations"] = []
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if img_ids is not None:
            evaluator.params.imgIds = list(img_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def reference_per_category(evaluator: COCOeval) -> dict[int, float]:
    """Category id -> AP in percent from pycocotools' precision array (NaN without GT)."""
    precision = evaluator.eval["precision"]  # (T, R, K, A, M)
    out = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[cat_id] = float(np.mean(p[p > -1])) * 100 if (p > -1).any() else float("nan")
    return out


STAT_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def reference_stats(evaluator: COCOeval) -> dict[str, float]:
    return {
        k: (float(v) * 100 if v >= 0 else float("nan")) for k, v in zip(STAT_KEYS, evaluator.stats)
    }

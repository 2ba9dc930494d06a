"""Time `masktron.evaluation.coco_evaluate` against pycocotools on the same detections.

The ground truth is `../shared/data/coco_sample` train2017 (32 real images) repeated `--copies`
times under new image ids; detections are each annotation's box jittered and its mask shifted,
plus a few false positives per image, seeded. Both sides get identical inputs and must agree on
every figure; the script prints seconds and the speed-up.

  python benchmarks/coco_eval_benchmark.py [--copies 20] [--iou-type bbox segm]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from masktron.evaluation import CocoGroundTruth, coco_evaluate

SHARED = Path(
    os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
)


def build(copies: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """The repeated ground truth and noisy detections on it."""
    path = SHARED / "data" / "coco_sample" / "annotations" / "instances_train2017.json"
    base = json.loads(path.read_text())
    api = COCO()
    api.dataset = copy.deepcopy(base)
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        masks = {a["id"]: api.annToMask(a) for a in base["annotations"]}
    rng = np.random.default_rng(seed)
    cat_ids = [c["id"] for c in base["categories"]]
    gt = {"images": [], "annotations": [], "categories": base["categories"]}
    dets = []
    for copy_index in range(copies):
        offset = copy_index * 10_000_000
        for image in base["images"]:
            gt["images"].append(image | {"id": image["id"] + offset})
        for ann in base["annotations"]:
            gt["annotations"].append(
                ann | {"id": ann["id"] + offset, "image_id": ann["image_id"] + offset}
            )
            if rng.random() < 0.1:
                continue
            x, y, w, h = ann["bbox"]
            box = np.array([x, y, w, h]) + rng.normal(0, 0.07, 4) * [w, h, w, h]
            box[2:] = np.maximum(box[2:], 1.0)
            shift = tuple(int(v) for v in rng.integers(-2, 3, 2) * max(1, int(min(w, h) // 12)))
            rle = mask_util.encode(np.asfortranarray(np.roll(masks[ann["id"]], shift, (0, 1))))
            dets.append(
                {
                    "image_id": ann["image_id"] + offset,
                    "category_id": ann["category_id"]
                    if rng.random() > 0.1
                    else int(rng.choice(cat_ids)),
                    "bbox": box.tolist(),
                    "score": float(rng.random()),
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                }
            )
        for image in base["images"]:
            for _ in range(int(rng.integers(0, 6))):
                h, w = image["height"], image["width"]
                x0, y0 = rng.random() * w * 0.7, rng.random() * h * 0.7
                bw, bh = rng.random() * (w - x0) + 1, rng.random() * (h - y0) + 1
                mask = np.zeros((h, w), np.uint8, order="F")
                mask[int(y0) : int(y0 + bh), int(x0) : int(x0 + bw)] = 1
                rle = mask_util.encode(mask)
                dets.append(
                    {
                        "image_id": image["id"] + offset,
                        "category_id": int(rng.choice(cat_ids)),
                        "bbox": [x0, y0, bw, bh],
                        "score": float(rng.random()),
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                    }
                )
    return gt, dets


def pycocotools_stats(gt: dict, dets: list[dict], iou_type: str) -> np.ndarray:
    """The plain pycocotools run a user would write: COCO, loadRes, COCOeval, summarize."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.array(evaluator.stats) * 100


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="repeats of the 32 images")
    parser.add_argument("--iou-type", nargs="+", default=["bbox", "segm"], choices=("bbox", "segm"))
    args = parser.parse_args()
    gt, dets = build(args.copies)
    print(
        f"{len(gt['images'])} images, {len(gt['annotations'])} annotations, {len(dets)} detections"
    )
    keys = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    for iou_type in args.iou_type:
        reference, t_ref = timed(
            pycocotools_stats, copy.deepcopy(gt), copy.deepcopy(dets), iou_type
        )
        ours, t_ours = timed(coco_evaluate, copy.deepcopy(gt), dets, iou_type)
        shared = CocoGroundTruth.load(gt)
        coco_evaluate(shared, dets[:1], iou_type)  # build the backend's index once
        _, t_warm = timed(coco_evaluate, shared, dets, iou_type)
        _, t_fallback = timed(
            coco_evaluate, copy.deepcopy(gt), dets, iou_type, backend="pycocotools"
        )
        ours_stats = np.array([ours[k] for k in keys])
        reference[reference < 0] = math.nan
        diff = np.nanmax(np.abs(ours_stats - reference))
        print(
            f"{iou_type}: pycocotools {t_ref:.2f} s | masktron {t_ours:.2f} s "
            f"({t_ref / t_ours:.1f}x faster; {t_warm:.2f} s with the ground truth loaded, "
            f"{t_ref / t_warm:.1f}x) | masktron on the pycocotools fallback {t_fallback:.2f} s | "
            f"AP {ours['AP']:.3f}, largest difference to pycocotools {diff:.1e} (percent)"
        )
        assert diff < 1e-4, "the figures must equal pycocotools'"


if __name__ == "__main__":
    main()

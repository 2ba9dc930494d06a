"""Time masktron's `coco_evaluate` against hotcoco called directly and pycocotools, at COCO scale.

The ground truth is `../shared/data/coco_sample` train2017 (32 real images, 288 objects with
polygon and crowd masks) repeated `--copies` times under new image and annotation ids (default
100: 3,200 images, 28,800 objects); detections are each annotation's box jittered and its mask
shifted, plus a few false positives per image, seeded (about 34,000, compressed RLE masks). The
three get the same in-memory ground truth (a parsed JSON dict) and detections (a list of dicts),
as `COCOEvaluator` has them; each must give every figure equal to pycocotools'. Prints the best
of `--repeats` runs of each, in seconds, and the ratios masktron / hotcoco and masktron /
pycocotools (the goals: at most 1.3 and 0.08), and the median process CPU time of hotcoco and
masktron with their ratio (on a shared machine less disturbed than wall time).

  python benchmarks/coco_eval_benchmark.py [--copies 100] [--repeats 3] [--iou-type bbox segm]
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

import hotcoco
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


def timed(run, *args) -> tuple[np.ndarray, float, float]:
    """`run(*args)`, its wall-clock time and its process CPU time (all threads) in seconds,
    freeing what it built included (for all three alike: a script pays for it too, and
    masktron's function frees its engine objects before it returns)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    stats = run(*args)
    return stats, time.perf_counter() - start, time.process_time() - start_cpu


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


def hotcoco_stats(gt: dict, dets: list[dict], iou_type: str) -> np.ndarray:
    """The same run on hotcoco's pycocotools-shaped API (it copies its inputs into Rust)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = hotcoco.COCO(gt)
        evaluator = hotcoco.COCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.array(evaluator.stats) * 100


KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def masktron_stats(gt, dets: list[dict], iou_type: str) -> np.ndarray:
    ours = coco_evaluate(gt, dets, iou_type)
    return np.array([ours[k] for k in KEYS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100, help="repeats of the 32 images")
    parser.add_argument("--repeats", type=int, default=3, help="runs of hotcoco and masktron")
    parser.add_argument("--iou-type", nargs="+", default=["bbox", "segm"], choices=("bbox", "segm"))
    args = parser.parse_args()
    gt, dets = build(args.copies)
    print(
        f"{len(gt['images'])} images, {len(gt['annotations'])} objects, {len(dets)} detections; "
        f"hotcoco {hotcoco.__version__}, {os.cpu_count()} CPUs"
    )
    for iou_type in args.iou_type:
        # pycocotools adds keys to both: it gets copies (made outside the timing)
        reference, t_ref, _ = timed(
            pycocotools_stats, copy.deepcopy(gt), copy.deepcopy(dets), iou_type
        )
        reference[reference < 0] = math.nan
        t_hot, t_ours, t_warm, cpu_hot, cpu_ours = [], [], [], [], []
        shared = CocoGroundTruth.load(gt)
        for _ in range(args.repeats):  # interleaved, so that both see the same machine load
            hot, seconds, cpu = timed(hotcoco_stats, gt, dets, iou_type)
            t_hot.append(seconds)
            cpu_hot.append(cpu)
            ours, seconds, cpu = timed(masktron_stats, gt, dets, iou_type)
            t_ours.append(seconds)
            cpu_ours.append(cpu)
            t_warm.append(timed(masktron_stats, shared, dets, iou_type)[1])
        hot[hot < 0] = math.nan
        diff = max(np.nanmax(np.abs(ours - reference)), np.nanmax(np.abs(hot - reference)))
        best_hot, best_ours, best_warm = min(t_hot), min(t_ours), min(t_warm)
        cpu_hot_mid, cpu_ours_mid = float(np.median(cpu_hot)), float(np.median(cpu_ours))
        print(
            f"{iou_type}: pycocotools {t_ref:.2f} s | hotcoco {best_hot:.2f} s | masktron "
            f"{best_ours:.2f} s ({best_warm:.2f} s with the ground truth already loaded) | "
            f"masktron/hotcoco {best_ours / best_hot:.2f}, masktron/pycocotools "
            f"{best_ours / t_ref:.3f} | process CPU time (median; less sensitive to other "
            f"processes) hotcoco {cpu_hot_mid:.3f} s, masktron {cpu_ours_mid:.3f} s: "
            f"{cpu_ours_mid - cpu_hot_mid:+.3f} s, masktron/hotcoco "
            f"{cpu_ours_mid / cpu_hot_mid:.2f} | AP {ours[0]:.3f}, largest "
            f"difference to pycocotools {diff:.1e} (percent)"
        )
        assert diff < 1e-9, "the figures must equal pycocotools'"


if __name__ == "__main__":
    main()

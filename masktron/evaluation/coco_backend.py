"""COCO box and mask AP: faster-coco-eval (C++) when installed, pycocotools otherwise.

Both backends run the official COCO protocol (`COCOeval.evaluate` + `accumulate`) and give the
same precision and recall arrays (to float rounding); the summary figures are then read from those
arrays here, the way `COCOeval.summarize` reads them, so the numbers do not depend on the backend.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from masktron.evaluation.coco_checks import (
    check_detections,
    check_gt_dataset,
    check_gt_segmentations,
    read_json,
)

BACKENDS = ("faster_coco_eval", "pycocotools")
IOU_TYPES = ("bbox", "segm")
AREAS = ("", "s", "m", "l")  # COCO's area ranges: all, small, medium, large


def resolve_backend(backend: str | None = None) -> str:
    """The backend to use: `backend` if given, else faster-coco-eval when importable."""
    if backend is None:
        try:
            import faster_coco_eval  # noqa: F401
        except ImportError:
            return "pycocotools"
        return "faster_coco_eval"
    if backend not in BACKENDS:
        raise ValueError(f"unknown COCO backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


class CocoGroundTruth:
    """A COCO instances ground truth, checked once and shared by every evaluation on it.

    Args:
        dataset: the parsed JSON (`images`, `categories`, `annotations`). It is not copied;
            the COCO tools add keys to its annotations (`ignore`, the RLE of a polygon).
        source: where it came from, for error messages.
    """

    def __init__(self, dataset: dict[str, Any], source: str = "ground truth"):
        check_gt_dataset(dataset, source)
        self.dataset = dataset
        self.source = source
        self.image_sizes = {im["id"]: (im["height"], im["width"]) for im in dataset["images"]}
        self.cat_ids = sorted(c["id"] for c in dataset["categories"])
        self.cat_names = {c["id"]: str(c["name"]) for c in dataset["categories"]}
        self.has_annotations = "annotations" in dataset
        self._apis: dict[str, Any] = {}
        self._segm_checked = False

    @classmethod
    def load(cls, gt: str | os.PathLike | Mapping | CocoGroundTruth) -> CocoGroundTruth:
        """From a JSON path, a parsed dict, or an existing `CocoGroundTruth` (returned as is)."""
        if isinstance(gt, CocoGroundTruth):
            return gt
        if isinstance(gt, Mapping):
            return cls(copy.deepcopy(dict(gt)), "ground-truth dict")
        return cls(read_json(gt), os.fspath(gt))

    def api(self, backend: str) -> Any:
        """The backend's `COCO` object for this ground truth (built on first use)."""
        if backend not in self._apis:
            # a second backend gets its own copy: each adds its own keys to the annotations
            dataset = copy.deepcopy(self.dataset) if self._apis else self.dataset
            dataset.setdefault("annotations", [])
            if backend == "faster_coco_eval":
                import faster_coco_eval

                self._apis[backend] = faster_coco_eval.COCO(dataset)
            else:
                from pycocotools.coco import COCO

                api = COCO()
                api.dataset = dataset
                with contextlib.redirect_stdout(io.StringIO()):
                    api.createIndex()
                self._apis[backend] = api
        return self._apis[backend]

    def check_segmentations(self) -> None:
        if not self._segm_checked:
            check_gt_segmentations(self.dataset, self.source)
            self._segm_checked = True


@dataclass
class CocoEvalArrays:
    """What `COCOeval.accumulate` produces, with the parameters that index it.

    Attributes:
        precision: (T, R, K, A, M) float64, -1 where a category has no ground truth.
        recall: (T, K, A, M) float64, -1 likewise.
        iou_thresholds: (T,) 0.50:0.05:0.95.
        cat_ids: the K category ids, sorted.
        max_dets: the M detection limits per image, ascending.
    """

    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray
    cat_ids: list[Any]
    max_dets: list[int]


def run_cocoeval(
    gt: CocoGroundTruth,
    detections: list[dict[str, Any]],
    iou_type: str,
    *,
    backend: str | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    img_ids: Sequence[Any] | None = None,
) -> CocoEvalArrays:
    """COCOeval's evaluate + accumulate on checked detections (see `check_detections`)."""
    backend = resolve_backend(backend)
    coco_gt = gt.api(backend)
    if backend == "faster_coco_eval":
        import faster_coco_eval

        coco_dt = coco_gt.loadRes(detections)
        evaluator = faster_coco_eval.COCOeval_faster(
            coco_gt, coco_dt, iou_type, print_function=lambda *args, **kwargs: None
        )
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            if detections:
                coco_dt = coco_gt.loadRes(detections)
            else:  # pycocotools' loadRes cannot read an empty list; an empty result set is valid
                coco_dt = COCO()
                coco_dt.dataset = {
                    "images": coco_gt.dataset["images"],
                    "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                    "annotations": [],
                }
                coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.maxDets = list(max_dets)
    if img_ids is not None:
        evaluator.params.imgIds = list(img_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    return CocoEvalArrays(
        precision=np.asarray(evaluator.eval["precision"], dtype=np.float64),
        recall=np.asarray(evaluator.eval["recall"], dtype=np.float64),
        iou_thresholds=np.asarray(evaluator.params.iouThrs),
        cat_ids=list(evaluator.params.catIds),
        max_dets=list(evaluator.params.maxDets),
    )


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(arrays: CocoEvalArrays) -> dict[str, float]:
    """The 12 COCO summary figures in percent (NaN where no ground truth defines them).

    Keys: AP, AP50, AP75, APs, APm, APl, AR{maxDets[0]}, AR{maxDets[1]}, AR{maxDets[2]}, ARs,
    ARm, ARl, as `COCOeval.summarize` computes them (AP over the last detection limit).
    """
    p, r = arrays.precision, arrays.recall  # (T, R, K, A, M), (T, K, A, M)
    t50 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.75)))
    m = len(arrays.max_dets) - 1
    raw = {
        "AP": _mean_valid(p[..., 0, m]),
        "AP50": _mean_valid(p[t50, ..., 0, m]),
        "AP75": _mean_valid(p[t75, ..., 0, m]),
    }
    for a, suffix in enumerate(AREAS[1:], start=1):
        raw[f"AP{suffix}"] = _mean_valid(p[..., a, m])
    for k, limit in enumerate(arrays.max_dets):
        raw[f"AR{limit}"] = _mean_valid(r[..., 0, k])
    for a, suffix in enumerate(AREAS[1:], start=1):
        raw[f"AR{suffix}"] = _mean_valid(r[..., a, m])
    return {key: value * 100 if value >= 0 else float("nan") for key, value in raw.items()}


def per_category_ap(arrays: CocoEvalArrays) -> dict[Any, float]:
    """category id -> AP in percent (all areas, last detection limit; NaN without ground truth)."""
    p = arrays.precision
    out = {}
    for k, cat_id in enumerate(arrays.cat_ids):
        value = _mean_valid(p[:, :, k, 0, -1])
        out[cat_id] = value * 100 if value >= 0 else float("nan")
    return out


def _check_max_dets(max_dets: Sequence[int]) -> list[int]:
    max_dets = [int(m) for m in max_dets]
    if len(max_dets) != 3 or sorted(set(max_dets)) != max_dets or max_dets[0] < 1:
        raise ValueError(f"max_dets must be 3 increasing positive limits, got {max_dets}")
    return max_dets


def coco_evaluate(
    gt_json: str | os.PathLike | Mapping | CocoGroundTruth,
    detections: str | os.PathLike | list[dict[str, Any]],
    iou_type: str = "bbox",
    *,
    backend: str | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    img_ids: Sequence[Any] | None = None,
) -> dict[str, float]:
    """COCO box or mask AP/AR of results against a ground-truth file, in percent.

    Args:
        gt_json: COCO instances ground truth: a JSON path, the parsed dict or a
            `CocoGroundTruth` (reuse one to evaluate many result sets).
        detections: COCO results: a list of dicts (`image_id`, `category_id`, `score`, `bbox`
            [x, y, w, h] in pixels, and for "segm" a `segmentation` as RLE or polygons) or the
            path of such a JSON file. An empty list is valid and scores 0.
        iou_type: "bbox" or "segm". As in pycocotools, when the results carry boxes their
            area (which decides small/medium/large) is the box area, also for "segm".
        backend: "faster_coco_eval" or "pycocotools"; default: the first one installed.
        max_dets: the 3 per-image detection limits (COCO: 1, 10, 100).
        img_ids: evaluate on these ground-truth images only (default: all).

    Returns:
        {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
        "AP-<category name>"...}: floats in percent; NaN where the ground truth has nothing to
        find (no instances of a category, or of an area range).

    Raises:
        ValueError: malformed ground truth or results (missing image ids, unknown categories,
            malformed RLE, ...), naming the file and the entry; FileNotFoundError.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {', '.join(IOU_TYPES)}, got {iou_type!r}")
    max_dets = _check_max_dets(max_dets)
    gt = CocoGroundTruth.load(gt_json)
    if not gt.has_annotations:
        raise ValueError(f"{gt.source} has no 'annotations' (a test set?): nothing to evaluate")
    if iou_type == "segm":
        gt.check_segmentations()
    if isinstance(detections, (str, os.PathLike)):
        source, detections = os.fspath(detections), read_json(detections)
    else:
        source = "results"
    clean = check_detections(
        detections, image_sizes=gt.image_sizes, cat_ids=gt.cat_ids, iou_type=iou_type, source=source
    )
    if img_ids is not None:
        unknown = [i for i in img_ids if i not in gt.image_sizes]
        if unknown:
            raise ValueError(f"img_ids not in {gt.source}: {unknown[:8]}")
    arrays = run_cocoeval(gt, clean, iou_type, backend=backend, max_dets=max_dets, img_ids=img_ids)
    results = summarize(arrays)
    names = [gt.cat_names[c] for c in arrays.cat_ids]
    for cat_id, ap in per_category_ap(arrays).items():
        name = gt.cat_names[cat_id]
        key = f"AP-{name}" if names.count(name) == 1 else f"AP-{name} ({cat_id})"
        results[key] = ap
    return results

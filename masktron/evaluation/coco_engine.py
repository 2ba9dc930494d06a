"""COCO box, mask and keypoint AP through one thin code path over hotcoco or pycocotools.

Both engines run the official protocol (`COCOeval.evaluate` + `accumulate`) and produce the same
precision and recall arrays; the summary figures are read from those arrays here as Detectron2
reads them (AP over the last detection limit, also when it is not 100), so the numbers do not
depend on the engine. The input checks (`coco_checks`, `results_checks`) run first, whichever
engine follows.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from masktron.evaluation.coco_checks import (
    check_gt_dataset,
    check_gt_keypoints,
    check_gt_segmentations,
    read_json,
)
from masktron.evaluation.engine import hotcoco, paused_gc, resolve_engine
from masktron.evaluation.results_checks import CheckedResults, check_detections

IOU_TYPES = ("bbox", "segm", "keypoints")
_AREA_SUFFIX = {"all": "", "small": "s", "medium": "m", "large": "l"}


def _int_id_map(ids: Sequence[Any]) -> dict[Any, int] | None:
    """None when every id is already a non-negative int (what hotcoco requires), else a map."""
    if set(map(type, ids)) <= {int} and min(ids, default=0) >= 0:
        return None
    return {old: new for new, old in enumerate(ids)}


class CocoGroundTruth:
    """A COCO ground truth, checked once and shared by every evaluation on it.

    Args:
        dataset: the parsed JSON (`images`, `categories`, `annotations`). It is neither copied
            nor modified (pycocotools gets its own copy); do not change it while this is in use.
        source: where it came from, for error messages.
    """

    def __init__(self, dataset: dict[str, Any], source: str = "ground truth"):
        self._columns, self.image_sizes = check_gt_dataset(dataset, source)
        self._segmentations: list[Any] | None = None
        self.dataset = dataset
        self.source = source
        self.cat_ids = sorted((c["id"] for c in dataset["categories"]), key=_sort_key)
        self.cat_names = {c["id"]: str(c["name"]) for c in dataset["categories"]}
        self.has_annotations = "annotations" in dataset
        self._apis: dict[tuple[str, str], Any] = {}
        self._checked: set[str] = set()
        # hotcoco takes non-negative integer ids only, pycocotools numeric annotation ids:
        # other ids are renumbered for the engines
        self.image_map = _int_id_map(list(self.image_sizes))
        self.cat_map = _int_id_map([c["id"] for c in dataset["categories"]])

    @classmethod
    def load(cls, gt: str | os.PathLike | Mapping | CocoGroundTruth) -> CocoGroundTruth:
        """From a JSON path, a parsed dict, or an existing `CocoGroundTruth` (returned as is)."""
        if isinstance(gt, CocoGroundTruth):
            return gt
        if isinstance(gt, Mapping):
            return cls(dict(gt), "ground-truth dict")
        return cls(read_json(gt), os.fspath(gt))

    @property
    def num_keypoints(self) -> int:
        """K, from the first annotation with `keypoints` (0 without any)."""
        for ann in self.dataset.get("annotations", []):
            if isinstance(ann.get("keypoints"), list):
                return len(ann["keypoints"]) // 3
        return 0

    def check_task(self, iou_type: str) -> None:
        """Check what `iou_type` needs beyond boxes (once): masks or keypoints."""
        if iou_type in self._checked:
            return
        if iou_type == "segm":
            self._segmentations = check_gt_segmentations(
                self.dataset, self.source, self.image_sizes
            )
        elif iou_type == "keypoints":
            if not self.num_keypoints:
                raise ValueError(f"{self.source}: no annotation has 'keypoints' (keypoint AP)")
            check_gt_keypoints(self.dataset, self.source, self.num_keypoints)
        self._checked.add(iou_type)

    def _engine_images_and_categories(self) -> tuple[list[dict], list[dict]]:
        images, cats = self.dataset["images"], self.dataset["categories"]
        if self.image_map is not None:
            images = [im | {"id": self.image_map[im["id"]]} for im in images]
        if self.cat_map is not None:
            cats = [c | {"id": self.cat_map[c["id"]]} for c in cats]
        return images, cats

    def _renumbered(self) -> bool:
        """Whether the engines see other ids than the file's (annotations numbered 1..N)."""
        if self.image_map is not None or self.cat_map is not None:
            return True
        ann_ids = self._columns.ids
        return not set(map(type, ann_ids)) <= {int} or min(ann_ids, default=0) < 0

    def _engine_dataset(self) -> dict[str, Any]:
        data = {**self.dataset, "annotations": self.dataset.get("annotations", [])}
        if not self._renumbered():
            return data
        images, cats = self.image_map or {}, self.cat_map or {}
        data["images"], data["categories"] = self._engine_images_and_categories()
        data["annotations"] = [
            a
            | {
                "id": k + 1,
                "image_id": images.get(a["image_id"], a["image_id"]),
                "category_id": cats.get(a["category_id"], a["category_id"]),
            }
            for k, a in enumerate(data["annotations"])
        ]
        return data

    def api(self, engine: str, iou_type: str = "keypoints") -> Any:
        """The engine's `COCO` object for this ground truth and task (built on first use).

        hotcoco builds box and mask tasks from columns (`COCO.from_arrays`: no dict per
        annotation, no polygons parsed for box AP) and keypoints from the dicts.
        """
        key = (engine, iou_type if engine == "hotcoco" and iou_type in ("bbox", "segm") else "")
        if key not in self._apis:
            if engine == "hotcoco" and key[1]:
                self._apis[key] = self._hotcoco_from_columns(with_masks=iou_type == "segm")
            elif engine == "hotcoco":
                self._apis[key] = hotcoco.COCO(self._engine_dataset())
            else:
                from pycocotools.coco import COCO

                api = COCO()  # pycocotools adds keys to the annotations: give it a copy
                api.dataset = copy.deepcopy(self._engine_dataset())
                with contextlib.redirect_stdout(io.StringIO()):
                    api.createIndex()
                self._apis[key] = api
        return self._apis[key]

    def _hotcoco_from_columns(self, with_masks: bool) -> Any:
        columns = self._columns
        n = len(columns.ids)
        ids: Any = columns.ids
        if self._renumbered():
            ids = range(1, n + 1)
        if with_masks:
            self.check_task("segm")
        images, cats = self._engine_images_and_categories()
        return hotcoco.COCO.from_arrays(
            images,
            cats,
            np.array(self.engine_ids(columns.image_ids, "image"), dtype=np.int64).reshape(n),
            np.array(self.engine_ids(columns.category_ids, "category"), dtype=np.int64).reshape(n),
            columns.boxes,
            ids=np.array(ids, dtype=np.int64).reshape(n),
            area=columns.areas,
            iscrowd=columns.iscrowd,
            segmentation=self._segmentations if with_masks else None,
        )

    def engine_ids(self, ids: Sequence[Any], kind: str) -> list[Any]:
        """Image ("image") or category ("category") ids as the engines know them."""
        mapping = self.image_map if kind == "image" else self.cat_map
        return list(ids) if mapping is None else [mapping[i] for i in ids]


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


@dataclass
class CocoEvalArrays:
    """What `COCOeval.accumulate` produces, with the parameters that index it.

    Attributes:
        precision: (T, R, K, A, M) float64, -1 where a category has no ground truth.
        recall: (T, K, A, M) float64, -1 likewise.
        iou_thresholds: (T,) 0.50:0.05:0.95.
        recall_thresholds: (R,) 0:0.01:1.
        cat_ids: the K category ids (the ground truth's own ids).
        area_labels: the A area ranges ("all", "small", "medium", "large"; no "small" for
            keypoints).
        max_dets: the M detection limits per image, ascending.
    """

    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    cat_ids: list[Any]
    area_labels: list[str]
    max_dets: list[int]


def _engine_results(gt: CocoGroundTruth, dets: CheckedResults, engine: str, iou_type: str) -> Any:
    """The engine's `loadRes` of checked results."""
    coco_gt = gt.api(engine, iou_type)
    image_ids = gt.engine_ids(dets.image_ids, "image")
    cat_ids = gt.engine_ids(dets.category_ids, "category")
    results = None
    if gt.image_map is not None or gt.cat_map is not None or engine == "pycocotools":
        results = dets.to_dicts()
        for r, image_id, cat_id in zip(results, image_ids, cat_ids):
            r["image_id"], r["category_id"] = image_id, cat_id
    if engine == "hotcoco":
        if dets.boxes is not None and dets.keypoints is None:
            # (N, 7) [image_id, x, y, w, h, score, category_id]: no dict per result
            columns = [np.asarray(image_ids, np.float64)[:, None], dets.boxes]
            columns += [dets.scores[:, None], np.asarray(cat_ids, np.float64)[:, None]]
            array = np.concatenate(columns, axis=1).reshape(len(dets), 7)
            return coco_gt.loadRes(array, segmentation=dets.segmentations)
        return coco_gt.loadRes(results if results is not None else dets.to_dicts())
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            return coco_gt.loadRes(results)
        empty = COCO()  # pycocotools' loadRes cannot read an empty list; an empty set is valid
        empty.dataset = {
            "images": coco_gt.dataset["images"],
            "categories": copy.deepcopy(coco_gt.dataset["categories"]),
            "annotations": [],
        }
        empty.createIndex()
        return empty


def _evaluate_during(evaluator: Any, check: Callable[[], None]) -> None:
    """`evaluator.evaluate()` in a thread while `check()` runs in this one; `check`'s error
    (raised once the thread is done) wins over the engine's result."""
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            evaluator.evaluate()
        except BaseException as e:  # (re-raised below, in the caller's thread)
            errors.append(e)

    thread = threading.Thread(target=evaluate, name="masktron-cocoeval", daemon=True)
    thread.start()
    try:
        check()
    finally:
        thread.join()
    if errors:
        raise errors[0]


def run_cocoeval(
    gt: CocoGroundTruth,
    dets: CheckedResults,
    iou_type: str,
    *,
    engine: str | None = None,
    max_dets: Sequence[int] | None = (1, 10, 100),
    img_ids: Sequence[Any] | None = None,
    kpt_oks_sigmas: Sequence[float] | None = None,
) -> CocoEvalArrays:
    """COCOeval's evaluate + accumulate of checked results (`results_checks.check_detections`).

    `max_dets` None keeps the protocol's limits (keypoints: 20); `kpt_oks_sigmas` None keeps
    COCO's 17 person sigmas.
    """
    engine = resolve_engine(engine)
    # hotcoco's loadRes of an array does not read the masks, and its evaluate (which does)
    # releases the GIL and reads malformed RLE strings without crashing (it scores them as
    # whatever they decode to): the check of the strings overlaps it, and its error wins
    overlap = engine == "hotcoco" and dets.boxes is not None and dets.keypoints is None
    if not overlap:
        dets.check_masks()
    coco_dt = _engine_results(gt, dets, engine, iou_type)
    if engine == "hotcoco":
        evaluator = hotcoco.COCOeval(gt.api(engine, iou_type), coco_dt, iou_type)
    else:
        from pycocotools.cocoeval import COCOeval

        evaluator = COCOeval(gt.api(engine, iou_type), coco_dt, iou_type)
    if max_dets is not None:
        evaluator.params.maxDets = list(max_dets)
    if img_ids is not None:
        evaluator.params.imgIds = gt.engine_ids(img_ids, "image")
    if kpt_oks_sigmas is not None:
        sigmas = np.asarray(kpt_oks_sigmas, dtype=np.float64)
        evaluator.params.kpt_oks_sigmas = sigmas if engine == "pycocotools" else sigmas.tolist()
    with contextlib.redirect_stdout(io.StringIO()):
        if overlap and dets.masks_source is not None:
            _evaluate_during(evaluator, dets.check_masks)
        else:
            evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    engine_cats = list(params.catIds)
    cats = engine_cats
    if gt.cat_map is not None:
        back = {v: k for k, v in gt.cat_map.items()}
        cats = [back[c] for c in engine_cats]
    accumulated = evaluator.eval  # (hotcoco builds this dict of arrays on every access)
    return CocoEvalArrays(
        precision=np.asarray(accumulated["precision"], dtype=np.float64),
        recall=np.asarray(accumulated["recall"], dtype=np.float64),
        iou_thresholds=np.asarray(params.iouThrs, dtype=np.float64),
        recall_thresholds=np.asarray(params.recThrs, dtype=np.float64),
        cat_ids=cats,
        area_labels=[str(a) for a in params.areaRngLbl],
        max_dets=[int(m) for m in params.maxDets],
    )


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(arrays: CocoEvalArrays, iou_type: str = "bbox") -> dict[str, float]:
    """COCO's summary figures in percent (NaN where no ground truth defines them).

    bbox / segm: AP, AP50, AP75, APs, APm, APl, AR{maxDets[0]}, AR{maxDets[1]},
    AR{maxDets[2]}, ARs, ARm, ARl. keypoints: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm,
    ARl. AP and the per-area figures use the last detection limit (as Detectron2 does for
    limits other than 100).
    """
    r = arrays.recall  # (T, K, A, M)
    t50 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.75)))
    m = len(arrays.max_dets) - 1
    # (T, R, K, A, M) -> (A, T, R, K) at the last limit, copied once: the slices below are then
    # contiguous, their elements in the same order as before
    p = np.moveaxis(arrays.precision[..., m], -1, 0).copy()
    areas = [(a, _AREA_SUFFIX.get(label, label)) for a, label in enumerate(arrays.area_labels)]
    raw = {"AP": _mean_valid(p[0]), "AP50": _mean_valid(p[0, t50]), "AP75": _mean_valid(p[0, t75])}
    raw.update({f"AP{suffix}": _mean_valid(p[a]) for a, suffix in areas[1:]})
    if iou_type == "keypoints":
        raw["AR"] = _mean_valid(r[..., 0, m])
        raw["AR50"] = _mean_valid(r[t50, :, 0, m])
        raw["AR75"] = _mean_valid(r[t75, :, 0, m])
    else:
        raw.update(
            {f"AR{limit}": _mean_valid(r[..., 0, k]) for k, limit in enumerate(arrays.max_dets)}
        )
    raw.update({f"AR{suffix}": _mean_valid(r[..., a, m]) for a, suffix in areas[1:]})
    return {key: value * 100 if value >= 0 else float("nan") for key, value in raw.items()}


def per_category_ap(arrays: CocoEvalArrays) -> dict[Any, float]:
    """category id -> AP in percent (all areas, last detection limit; NaN without ground truth)."""
    out = {}
    per_k = np.moveaxis(arrays.precision[:, :, :, 0, -1], -1, 0).copy()  # (T, R, K) -> (K, T, R)
    for k, cat_id in enumerate(arrays.cat_ids):
        value = _mean_valid(per_k[k])
        out[cat_id] = value * 100 if value >= 0 else float("nan")
    return out


def check_max_dets(max_dets: Sequence[int]) -> list[int]:
    max_dets = [int(m) for m in max_dets]
    if len(max_dets) != 3 or sorted(set(max_dets)) != max_dets or max_dets[0] < 1:
        raise ValueError(f"max_dets must be 3 increasing positive limits, got {max_dets}")
    return max_dets


def check_results(
    gt: CocoGroundTruth,
    detections: str | os.PathLike | list[dict[str, Any]],
    iou_type: str,
    *,
    defer_masks: bool = False,
) -> CheckedResults:
    """COCO results (a list of dicts or a JSON path) checked against `gt` for `iou_type`
    (`defer_masks`: see `check_detections`; `run_cocoeval` finishes the check)."""
    source = "results"
    if isinstance(detections, (str, os.PathLike)):
        source, detections = os.fspath(detections), read_json(detections)
    return check_detections(
        detections,
        image_sizes=gt.image_sizes,
        cat_ids=gt.cat_ids,
        iou_type=iou_type,
        source=source,
        num_keypoints=gt.num_keypoints if iou_type == "keypoints" else None,
        defer_masks=defer_masks,
    )


def coco_evaluate(
    gt_json: str | os.PathLike | Mapping | CocoGroundTruth,
    detections: str | os.PathLike | list[dict[str, Any]],
    iou_type: str = "bbox",
    *,
    backend: str | None = None,
    max_dets: Sequence[int] | None = None,
    img_ids: Sequence[Any] | None = None,
    kpt_oks_sigmas: Sequence[float] | None = None,
    arrays: dict[str, CocoEvalArrays] | None = None,
) -> dict[str, float]:
    """COCO box, mask or keypoint AP/AR of results against a ground-truth file, in percent.

    Args:
        gt_json: COCO ground truth: a JSON path, the parsed dict or a `CocoGroundTruth`
            (reuse one to evaluate many result sets).
        detections: COCO results: a list of dicts (`image_id`, `category_id`, `score`, `bbox`
            [x, y, w, h] in pixels, and for "segm" a `segmentation` as RLE or polygons, for
            "keypoints" `keypoints` [x1, y1, s1, ...]) or the path of such a JSON file. An
            empty list is valid and scores 0.
        iou_type: "bbox", "segm" or "keypoints". As in pycocotools, when the results carry
            boxes their area (which decides small/medium/large) is the box area.
        backend: the engine, "hotcoco" or "pycocotools"; default: $MASKTRON_COCO_ENGINE, else
            hotcoco. Both give the same figures.
        max_dets: the 3 per-image detection limits (default COCO's 1, 10, 100; keypoints: 20).
        img_ids: evaluate on these ground-truth images only (default: all).
        kpt_oks_sigmas: per-keypoint OKS sigmas (default: COCO's 17 person keypoints).
        arrays: if given, the accumulated precision/recall arrays are stored in it under
            `iou_type` (for per-category tables and PR plots).

    Returns:
        bbox / segm: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
        "ARm", "ARl", "AP-<category name>"...}; keypoints: {"AP", "AP50", "AP75", "APm", "APl",
        "AR", "AR50", "AR75", "ARm", "ARl", "AP-<category name>"...}. Floats in percent; NaN
        where the ground truth has nothing to find (no instances of a category or area range).

    Raises:
        ValueError: malformed ground truth or results (image ids not in the ground truth,
            unknown categories, malformed RLE, ...), naming the file and the entry;
            FileNotFoundError.
    """
    with paused_gc():
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {', '.join(IOU_TYPES)}, got {iou_type!r}")
        if max_dets is not None:
            max_dets = check_max_dets(max_dets)
        elif iou_type != "keypoints":
            max_dets = [1, 10, 100]
        engine = resolve_engine(backend)
        gt = CocoGroundTruth.load(gt_json)
        if not gt.has_annotations:
            raise ValueError(f"{gt.source} has no 'annotations' (a test set?): nothing to evaluate")
        gt.check_task(iou_type)
        checked = check_results(gt, detections, iou_type, defer_masks=True)
        check_kpt_sigmas(kpt_oks_sigmas, gt, iou_type)
        if img_ids is not None:
            unknown = [i for i in img_ids if i not in gt.image_sizes]
            if unknown:
                raise ValueError(f"img_ids not in {gt.source}: {unknown[:8]}")
        accumulated = run_cocoeval(
            gt,
            checked,
            iou_type,
            engine=engine,
            max_dets=max_dets,
            img_ids=img_ids,
            kpt_oks_sigmas=kpt_oks_sigmas,
        )
        if arrays is not None:
            arrays[iou_type] = accumulated
        results = summarize(accumulated, iou_type)
        names = [gt.cat_names[c] for c in accumulated.cat_ids]
        for cat_id, ap in per_category_ap(accumulated).items():
            name = gt.cat_names[cat_id]
            key = f"AP-{name}" if names.count(name) == 1 else f"AP-{name} ({cat_id})"
            results[key] = ap
        return results


COCO_PERSON_SIGMAS = 17  # COCO's keypoint sigmas are for its 17 person keypoints


def check_kpt_sigmas(sigmas: Sequence[float] | None, gt: CocoGroundTruth, iou_type: str) -> None:
    """The sigmas must be one per ground-truth keypoint (COCO's default: 17)."""
    if iou_type != "keypoints":
        return
    k = gt.num_keypoints
    n = COCO_PERSON_SIGMAS if sigmas is None else len(sigmas)
    if n != k:
        what = "COCO's default OKS sigmas are" if sigmas is None else "kpt_oks_sigmas has"
        raise ValueError(
            f"{gt.source} has {k} keypoints per instance but {what} {n}: pass kpt_oks_sigmas "
            "(TEST.KEYPOINT_OKS_SIGMAS) with one sigma per keypoint"
        )

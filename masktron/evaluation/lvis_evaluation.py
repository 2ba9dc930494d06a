"""LVIS box and mask AP (LVIS v1's federated protocol) through hotcoco, with Detectron2's API.

The LVIS protocol (Gupta et al., "LVIS", 2019; lvis-api) differs from COCO's: each image lists
the categories verified absent (`neg_category_ids`) and those not exhaustively annotated
(`not_exhaustive_category_ids`); a detection of a category neither present nor verified absent
in its image is not judged, and unmatched detections of a not-exhaustive category are not false
positives. At most 300 detections per image (the top-scoring, over all categories) are kept,
and AP is also reported over rare, common and frequent categories (`frequency` "r", "c", "f").
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from masktron.evaluation.coco_engine import (
    CocoEvalArrays,
    CocoGroundTruth,
    check_results,
    per_category_ap,
)
from masktron.evaluation.coco_evaluation import COCOEvaluator
from masktron.evaluation.engine import paused_gc, require_hotcoco
from masktron.evaluation.results_checks import CheckedResults
from masktron.evaluation.table import create_small_table

logger = logging.getLogger(__name__)

LVIS_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
LVIS_MAX_DETS = 300


def run_lvis_eval(
    gt: CocoGroundTruth, dets: CheckedResults, iou_type: str, *, max_dets: int = LVIS_MAX_DETS
) -> tuple[dict[str, float], CocoEvalArrays]:
    """LVIS evaluation of checked results: the figures in percent and the accumulated arrays.

    Returns:
        ({"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300", ...}, arrays).
    """
    hotcoco = require_hotcoco("LVIS evaluation")
    dets.check_masks()  # (when the caller deferred the check)
    coco_gt = gt.api("hotcoco", iou_type)
    results = dets.to_dicts()
    for r, image_id, cat_id in zip(
        results,
        gt.engine_ids(dets.image_ids, "image"),
        gt.engine_ids(dets.category_ids, "category"),
    ):
        r["image_id"], r["category_id"] = image_id, cat_id
    # the top `max_dets` detections of each image over all categories, as lvis-api keeps them
    coco_dt = hotcoco.LVISResults(coco_gt, results, max_dets=max_dets)
    evaluator = hotcoco.COCOeval(coco_gt, coco_dt, iou_type, lvis_style=True)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.run()
    figures = {k: float(v) * 100 for k, v in evaluator.get_results().items()}
    params = evaluator.params
    cats = list(params.catIds)
    if gt.cat_map is not None:
        back = {v: k for k, v in gt.cat_map.items()}
        cats = [back[c] for c in cats]
    arrays = CocoEvalArrays(
        precision=evaluator.eval["precision"],
        recall=evaluator.eval["recall"],
        iou_thresholds=params.iouThrs,
        recall_thresholds=params.recThrs,
        cat_ids=cats,
        area_labels=list(params.areaRngLbl),
        max_dets=list(params.maxDets),
    )
    return figures, arrays


def check_lvis_ground_truth(gt: CocoGroundTruth) -> None:
    """LVIS needs `frequency` per category and, per image, the two lists of category ids."""
    for i, cat in enumerate(gt.dataset["categories"]):
        if cat.get("frequency") not in ("r", "c", "f"):
            raise ValueError(
                f'{gt.source}: categories[{i}] needs \'frequency\' "r", "c" or "f" (LVIS)'
            )
    known = set(gt.cat_ids)
    for i, image in enumerate(gt.dataset["images"]):
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            ids = image.get(key, [])
            if not isinstance(ids, list) or not set(ids) <= known:
                raise ValueError(
                    f"{gt.source}: images[{i}] (id {image['id']!r}): {key!r} must be a list of "
                    "category ids of the ground truth"
                )


def lvis_evaluate(
    gt_json: str | os.PathLike | Mapping | CocoGroundTruth,
    detections: str | os.PathLike | list[dict[str, Any]],
    iou_type: str = "bbox",
    *,
    max_dets: int = LVIS_MAX_DETS,
    arrays: dict[str, CocoEvalArrays] | None = None,
) -> dict[str, float]:
    """LVIS AP of COCO-format results against an LVIS ground truth, in percent.

    Args:
        gt_json: LVIS v1 ground truth (a JSON path, the parsed dict or a `CocoGroundTruth`).
        detections: COCO results (a list of dicts or a JSON path), as for `coco_evaluate`.
        iou_type: "bbox" or "segm".
        max_dets: detections kept per image (the top-scoring over all categories; LVIS: 300).
        arrays: if given, the accumulated arrays are stored in it under `iou_type`.

    Returns:
        {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300", "ARs@300",
        "ARm@300", "ARl@300", "AP-<category name>"...}.
    """
    with paused_gc():
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"LVIS iou_type must be bbox or segm, got {iou_type!r}")
        gt = CocoGroundTruth.load(gt_json)
        check_lvis_ground_truth(gt)
        gt.check_task(iou_type)
        checked = check_results(gt, detections, iou_type)
        figures, accumulated = run_lvis_eval(gt, checked, iou_type, max_dets=max_dets)
        if arrays is not None:
            arrays[iou_type] = accumulated
        for cat_id, ap in per_category_ap(accumulated).items():
            figures[f"AP-{gt.cat_names[cat_id]}"] = ap
        return figures


class LVISEvaluator(COCOEvaluator):
    """Box and mask AP on a registered LVIS dataset (e.g. "lvis_v1_val"), as Detectron2's.

    The ground truth is the metadata's `json_file` (LVIS v1 JSON). Predicted classes are
    contiguous ids, mapped through `thing_dataset_id_to_contiguous_id` when the metadata has it,
    else to LVIS ids by adding 1 (Detectron2's convention). Results: `{"bbox"|"segm": {"AP",
    "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}}` in percent.

    Args:
        dataset_name: a registered dataset with an LVIS `json_file`.
        tasks: among "bbox", "segm"; None: "bbox", plus "segm" with masks.
        distributed: gather predictions from all ranks to rank 0.
        output_dir: where to write `lvis_instances_results.json`.
        max_dets_per_image: detections kept per image (default 300).
    """

    _results_file = "lvis_instances_results.json"

    def __init__(
        self,
        dataset_name: str,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int | None = None,
    ):
        if tasks is not None and hasattr(tasks, "MODEL"):  # Detectron2's old (name, cfg, ...) call
            tasks = ("bbox", "segm") if tasks.MODEL.MASK_ON else ("bbox",)
        if tasks is not None and not set(tasks) <= {"bbox", "segm"}:
            raise ValueError(f"LVISEvaluator: unsupported tasks {list(tasks)}; use bbox, segm")
        self._lvis_max_dets = int(max_dets_per_image or LVIS_MAX_DETS)
        super().__init__(dataset_name, tasks, distributed, output_dir, backend="hotcoco")
        check_lvis_ground_truth(self._gt)

    def _class_mapping(self) -> dict[int, Any] | None:
        mapping = super()._class_mapping()
        if mapping is None:  # LVIS category ids are 1..N: contiguous id + 1, as in Detectron2
            return {i: i + 1 for i in range(len(self._gt.cat_ids))}
        return mapping

    def _evaluate_task(self, results: list[dict], task: str, img_ids: Any) -> dict[str, float]:
        with paused_gc():
            checked = self._checked(results, task)
            figures, arrays = run_lvis_eval(self._gt, checked, task, max_dets=self._lvis_max_dets)
        self.arrays[task] = arrays
        res = {k: figures[k] for k in LVIS_METRICS}
        logger.info("Evaluation results for %s:\n%s", task, create_small_table(res))
        return res

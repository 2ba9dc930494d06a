"""`COCOEvaluator`: COCO box and mask AP of a model's `Instances`, as Detectron2 computes it."""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from masktron.data.catalog import MetadataCatalog
from masktron.evaluation.coco_engine import (
    IOU_TYPES,
    CocoGroundTruth,
    check_kpt_sigmas,
    check_max_dets,
    per_category_ap,
    run_cocoeval,
    summarize,
)
from masktron.evaluation.engine import paused_gc, resolve_engine
from masktron.evaluation.evaluator import DatasetEvaluator, gather_to_main
from masktron.evaluation.proposal_recall import box_proposal_metrics
from masktron.evaluation.results_checks import CheckedResults, check_detections
from masktron.evaluation.rle import encode_masks
from masktron.evaluation.table import create_small_table, per_category_table
from masktron.utils.file_io import atomic_open

logger = logging.getLogger(__name__)

_MAIN_METRICS = {
    "bbox": ("AP", "AP50", "AP75", "APs", "APm", "APl"),
    "segm": ("AP", "AP50", "AP75", "APs", "APm", "APl"),
    "keypoints": ("AP", "AP50", "AP75", "APm", "APl"),
}


def instances_to_coco_json(instances: Any, img_id: Any) -> list[dict[str, Any]]:
    """One image's `Instances` as COCO result dicts (contiguous class ids, not yet mapped).

    Args:
        instances: with `pred_boxes` (`Boxes` or (N, 4) tensor, XYXY absolute pixels), `scores`
            (N,), `pred_classes` (N,) int and optionally `pred_masks` (N, H, W) bool.
        img_id: the image's id in the dataset.

    Returns:
        N dicts: `image_id`, `category_id` (the contiguous class), `bbox` [x, y, w, h] in pixels,
        `score`, and `segmentation` (compressed RLE, str counts) when there are masks.
    """
    n = len(instances)
    if n == 0:
        return []
    boxes = getattr(instances.pred_boxes, "tensor", instances.pred_boxes)
    xyxy = torch.as_tensor(boxes).detach().to("cpu", torch.float64).numpy().reshape(n, 4)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # (N, 4) COCO boxes
    scores = torch.as_tensor(instances.scores).detach().cpu().tolist()
    classes = torch.as_tensor(instances.pred_classes).detach().cpu().tolist()
    rles = None
    if instances.has("pred_masks"):
        masks = torch.as_tensor(instances.pred_masks).detach().cpu()
        rles = encode_masks(masks.numpy() if masks.dtype == torch.bool else (masks >= 0.5).numpy())
    keypoints = None
    if instances.has("pred_keypoints"):
        points = torch.as_tensor(instances.pred_keypoints).detach().to("cpu", torch.float64)
        points = points.numpy().copy().reshape(n, -1, 3)  # (N, K, 3) x, y, score
        # COCO's keypoints are pixel indices, the model's continuous coordinates (pixel centres
        # at +0.5): Detectron2 subtracts 0.5, the inverse of what its COCO loader adds
        points[:, :, :2] -= 0.5
        keypoints = points.reshape(n, -1)  # (N, K, 3) -> (N, 3K)
    results = []
    for k in range(n):
        result = {
            "image_id": img_id,
            "category_id": int(classes[k]),
            "bbox": xywh[k].tolist(),
            "score": float(scores[k]),
        }
        if rles is not None:
            result["segmentation"] = rles[k]
        if keypoints is not None:
            result["keypoints"] = keypoints[k].tolist()
        results.append(result)
    return results


class UnknownCategoryError(ValueError, AssertionError):
    """A prediction's class is not one of the dataset's. Also an AssertionError, which is what
    Detectron2's evaluator raises here (code that catches it keeps working)."""


class COCOEvaluator(DatasetEvaluator):
    """Box, mask and keypoint AP on a registered dataset, with Detectron2's results layout.

    The ground truth is `MetadataCatalog.get(dataset_name).json_file` when set, else the
    registered dataset dicts converted to COCO JSON (cached as
    `<output_dir>/<dataset_name>_coco_format.json`). Predicted classes are contiguous ids, mapped
    back with the metadata's `thing_dataset_id_to_contiguous_id`.

    Args:
        dataset_name: a name registered in `DatasetCatalog` / `MetadataCatalog`.
        tasks: among "bbox", "segm", "keypoints"; None: "bbox", plus "segm" when the
            predictions have masks and "keypoints" when they have keypoints.
        distributed: gather predictions from all ranks to rank 0 (when torch.distributed runs).
        output_dir: where to write `coco_instances_results.json` (COCO results, RLE masks).
        max_dets_per_image: the 3 detection limits (default COCO's 1, 10, 100).
        use_fast_impl: False runs pycocotools instead of the default engine (same figures).
        kpt_oks_sigmas: per-keypoint OKS sigmas (Detectron2's `TEST.KEYPOINT_OKS_SIGMAS`);
            empty: COCO's 17 person sigmas.
        allow_cached_coco: reuse an existing converted ground-truth file in `output_dir`.
        backend: "hotcoco" or "pycocotools" (overrides `use_fast_impl`; default:
            $MASKTRON_COCO_ENGINE, else hotcoco).
    """

    _results_file = "coco_instances_results.json"

    def __init__(
        self,
        dataset_name: str,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: Sequence[int] | None = None,
        use_fast_impl: bool = True,
        kpt_oks_sigmas: Sequence[float] = (),
        allow_cached_coco: bool = True,
        backend: str | None = None,
    ):
        if tasks is not None and hasattr(tasks, "MODEL"):  # Detectron2's old (name, cfg, ...) call
            cfg: Any = tasks
            tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
            if cfg.MODEL.get("KEYPOINT_ON", False):
                tasks += ("keypoints",)
                kpt_oks_sigmas = kpt_oks_sigmas or tuple(cfg.TEST.get("KEYPOINT_OKS_SIGMAS", ()))
        if tasks is not None:
            unknown = [t for t in tasks if t not in IOU_TYPES]
            if unknown:
                raise ValueError(f"COCOEvaluator: unsupported tasks {unknown}; use {IOU_TYPES}")
            tasks = tuple(tasks)
        self._tasks = tasks
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets = check_max_dets(max_dets_per_image or (1, 10, 100))
        self._backend = resolve_engine(backend or (None if use_fast_impl else "pycocotools"))
        self._kpt_oks_sigmas = tuple(float(s) for s in kpt_oks_sigmas) or None
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = self._metadata.get("json_file")
        if json_file is None:
            logger.info("%r has no json_file; converting its dataset dicts to COCO", dataset_name)
            gt = self._convert_dataset(allow_cached_coco)
        else:
            gt = CocoGroundTruth.load(json_file)
        self._gt = gt
        self._contiguous_to_id = self._class_mapping()
        self.reset()

    def _convert_dataset(self, allow_cached: bool) -> CocoGroundTruth:
        from masktron.data.datasets.coco_convert import convert_to_coco_dict, convert_to_coco_json

        if self._output_dir is None:
            return CocoGroundTruth(convert_to_coco_dict(self._dataset_name), self._dataset_name)
        cache = os.path.join(self._output_dir, f"{self._dataset_name}_coco_format.json")
        convert_to_coco_json(self._dataset_name, cache, allow_cached=allow_cached)
        return CocoGroundTruth.load(cache)

    def _class_mapping(self) -> dict[int, Any] | None:
        mapping = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if mapping is None:
            return None
        reverse = {int(v): k for k, v in mapping.items()}
        if sorted(reverse) != list(range(len(reverse))):
            raise ValueError(
                f"{self._dataset_name}: thing_dataset_id_to_contiguous_id must map onto 0..N-1"
            )
        return reverse

    def reset(self) -> None:
        self._predictions: list[dict[str, Any]] = []
        # per task, the precision/recall arrays of the last `evaluate` (for PR-curve plots)
        self.arrays: dict[str, Any] = {}

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Convert each image's `outputs[i]["instances"]` to COCO results (masks as RLE), and
        keep its `outputs[i]["proposals"]` (proposal-only models) as arrays."""
        for inp, out in zip(inputs, outputs):
            prediction: dict[str, Any] = {"image_id": inp["image_id"]}
            if "instances" in out:
                instances = out["instances"].to("cpu")
                prediction["instances"] = instances_to_coco_json(instances, inp["image_id"])
            if "proposals" in out:
                proposals = out["proposals"].to("cpu")
                prediction["proposals"] = {
                    "image_id": inp["image_id"],
                    "boxes": proposals.proposal_boxes.tensor.numpy(),
                    "objectness_logits": proposals.objectness_logits.numpy(),
                }
            self._predictions.append(prediction)

    def evaluate(self, img_ids: Sequence[Any] | None = None) -> dict[str, dict[str, float]]:
        """AP figures per task in percent; `{}` on ranks other than 0 or without predictions.

        Args:
            img_ids: evaluate on these images only (default: every ground-truth image).
        """
        if self._distributed:
            gathered = gather_to_main(self._predictions)
            if not gathered:
                return {}
            predictions = [p for rank in gathered for p in rank]
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning("[COCOEvaluator] Did not receive valid predictions.")
            return {}
        output: dict[str, dict[str, float]] = {}
        if any("proposals" in p for p in predictions):
            recall = self._eval_box_proposals(
                [p["proposals"] for p in predictions if "proposals" in p]
            )
            if recall:
                output["box_proposals"] = recall
        if any("instances" in p for p in predictions):
            output.update(self._eval_instances(predictions, img_ids))
        return output

    def _eval_box_proposals(self, proposals: list[dict[str, Any]]) -> dict[str, float]:
        """AR@100/1000 (all, small, medium, large); writes `box_proposals.pkl` to `output_dir`
        in Detectron2's proposal-file format (what `DATASETS.PROPOSAL_FILES_*` read)."""
        if self._output_dir:
            data = {
                "ids": [p["image_id"] for p in proposals],
                "boxes": [p["boxes"] for p in proposals],
                "objectness_logits": [p["objectness_logits"] for p in proposals],
                "bbox_mode": 0,  # BoxMode.XYXY_ABS
            }
            path = os.path.join(self._output_dir, "box_proposals.pkl")
            with atomic_open(path, "wb") as f:
                pickle.dump(data, f)
            logger.info("Saved proposals to %s", path)
        if not self._gt.has_annotations:
            return {}
        res = box_proposal_metrics(proposals, self._gt.dataset)
        logger.info("Proposal metrics:\n%s", create_small_table(res))
        return res

    def _eval_instances(
        self, predictions: list[dict[str, Any]], img_ids: Sequence[Any] | None
    ) -> dict[str, dict[str, float]]:
        results = [r for p in predictions for r in p.get("instances", [])]
        self._map_classes(results)
        if self._output_dir:
            path = os.path.join(self._output_dir, self._results_file)
            with atomic_open(path, "w") as f:
                json.dump(results, f)
            logger.info("Saved COCO results to %s", path)
        if not self._gt.has_annotations:
            logger.info("%s has no annotations: results written, not evaluated", self._gt.source)
            return {}
        tasks = self._tasks or self._tasks_from_results(results)
        return {task: self._evaluate_task(results, task, img_ids) for task in sorted(tasks)}

    def _map_classes(self, results: list[dict[str, Any]]) -> None:
        if self._contiguous_to_id is None:
            return
        num_classes = len(self._contiguous_to_id)
        for r in results:
            if r["category_id"] not in self._contiguous_to_id:
                raise UnknownCategoryError(
                    f"a prediction on image {r['image_id']!r} has class {r['category_id']}, but "
                    f"dataset {self._dataset_name!r} has {num_classes} classes "
                    f"(0..{num_classes - 1}): does the model match the dataset?"
                )
            r["category_id"] = self._contiguous_to_id[r["category_id"]]

    @staticmethod
    def _tasks_from_results(results: list[dict[str, Any]]) -> tuple[str, ...]:
        tasks: tuple[str, ...] = ("bbox",)
        for task, key in (("segm", "segmentation"), ("keypoints", "keypoints")):
            if results and all(key in r for r in results):
                tasks += (task,)
        return tasks

    def _checked(self, results: list[dict], task: str) -> CheckedResults:
        """The results `task` evaluates, checked against the ground truth."""
        self._gt.check_task(task)
        if task == "segm":
            # Detectron2 drops the boxes: with them, pycocotools would take the box area as the
            # instance's area and sort masks into small/medium/large by their boxes.
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        return check_detections(
            results,
            image_sizes=self._gt.image_sizes,
            cat_ids=self._gt.cat_ids,
            iou_type=task,
            source=f"predictions on {self._dataset_name}",
            num_keypoints=self._gt.num_keypoints if task == "keypoints" else None,
        )

    def _evaluate_task(self, results: list[dict], task: str, img_ids: Any) -> dict[str, float]:
        with paused_gc():
            clean = self._checked(results, task)
            check_kpt_sigmas(self._kpt_oks_sigmas, self._gt, task)
            arrays = run_cocoeval(
                self._gt,
                clean,
                task,
                engine=self._backend,
                # keypoints keep COCO's limit of 20 per image, as in Detectron2
                max_dets=None if task == "keypoints" else self._max_dets,
                img_ids=img_ids,
                kpt_oks_sigmas=self._kpt_oks_sigmas,
            )
        self.arrays[task] = arrays
        summary = summarize(arrays, task)
        res = {k: summary[k] for k in _MAIN_METRICS[task]}
        logger.info("Evaluation results for %s:\n%s", task, create_small_table(res))
        per_cat = per_category_ap(arrays)
        if len(per_cat) <= 1:
            return res
        names = self._class_names(arrays.cat_ids)
        per_name = {name: per_cat[cat_id] for cat_id, name in zip(arrays.cat_ids, names)}
        logger.info("Per-category %s AP:\n%s", task, per_category_table(per_name))
        res.update({f"AP-{name}": ap for name, ap in per_name.items()})
        return res

    def _class_names(self, cat_ids: list[Any]) -> list[str]:
        """Names from `thing_classes` (through the id mapping), else from the ground truth."""
        classes = self._metadata.get("thing_classes")
        if self._contiguous_to_id is None:
            to_contiguous = {i: i for i in range(len(classes or ()))}
        else:
            to_contiguous = {v: k for k, v in self._contiguous_to_id.items()}
        if classes is not None and len(classes) == len(cat_ids):
            if all(c in to_contiguous for c in cat_ids):
                return [str(classes[to_contiguous[c]]) for c in cat_ids]
        return [self._gt.cat_names[c] for c in cat_ids]

"""`SemSegEvaluator`: semantic segmentation mIoU, fwIoU, mACC, pACC from a confusion matrix.

hotcoco's `SemanticEval` counts the confusion matrix (in Rust, image by image); the figures are
computed from it here with Detectron2's definitions (a class absent from the ground truth is NaN
and left out of the means), which differ from mmsegmentation's that hotcoco reports.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.evaluation.engine import require_hotcoco
from masktron.evaluation.evaluator import DatasetEvaluator, gather_to_main
from masktron.evaluation.rle import encode_masks
from masktron.utils.file_io import atomic_open

logger = logging.getLogger(__name__)


def load_label_png(path: str) -> np.ndarray:
    """A label image (one class index per pixel) as (H, W) int64; errors name the file."""
    try:
        with Image.open(path) as image:
            return np.asarray(image, dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: semantic label image not found") from None
    except OSError as e:
        raise OSError(f"{path}: cannot read the semantic label image ({e})") from None


def sem_seg_metrics(conf: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Metrics in percent from a confusion matrix indexed [prediction, ground truth].

    Only its first C rows and columns are read (the non-ignored pixels). IoU and accuracy of a
    class absent from the ground truth are NaN and left out of the means (Detectron2's
    definitions).
    """
    n = len(class_names)
    tp = conf.diagonal()[:n].astype(np.float64)
    pos_gt = conf[:n, :n].sum(axis=0).astype(np.float64)  # ground-truth pixels per class
    pos_pred = conf[:n, :n].sum(axis=1).astype(np.float64)  # predictions on non-ignored pixels
    acc = np.full(n, np.nan)
    iou = np.full(n, np.nan)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    total = pos_gt.sum()
    weights = pos_gt / total if total else np.zeros(n)

    def mean(values: np.ndarray, valid: np.ndarray) -> float:
        return float(values[valid].mean()) if valid.any() else float("nan")

    res = {
        "mIoU": 100 * mean(iou, iou_valid),
        "fwIoU": 100 * float((iou[iou_valid] * weights[iou_valid]).sum()) if total else np.nan,
    }
    res.update({f"IoU-{name}": 100 * float(iou[i]) for i, name in enumerate(class_names)})
    res["mACC"] = 100 * mean(acc, acc_valid)
    res["pACC"] = 100 * float(tp.sum() / total) if total else float("nan")
    res.update({f"ACC-{name}": 100 * float(acc[i]) for i, name in enumerate(class_names)})
    return res


class SemSegEvaluator(DatasetEvaluator):
    """Semantic segmentation metrics of `outputs[i]["sem_seg"]` (C, H, W) scores.

    The ground truth of an input is the label image `input["sem_seg_file_name"]`, or the one the
    registered dataset lists for `input["file_name"]`; `ignore_label` pixels do not count.

    Args:
        dataset_name: registered dataset; metadata `stuff_classes` (and `ignore_label`,
            `stuff_dataset_id_to_contiguous_id` for the JSON output).
        distributed: sum confusion matrices from all ranks on rank 0.
        output_dir: if set, write `sem_seg_predictions.json` (per image and class, an RLE).
        sem_seg_loading_fn: reads a label file into an (H, W) integer array.
        num_classes: default: the number of `stuff_classes`.
        ignore_label: default: the metadata's, else 255.
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        sem_seg_loading_fn: Callable[[str], np.ndarray] = load_label_png,
        num_classes: int | None = None,
        ignore_label: int | None = None,
    ):
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        classes = self._metadata.get("stuff_classes")
        if classes is None and num_classes is None:
            raise ValueError(f"SemSegEvaluator: {dataset_name!r} has no stuff_classes metadata")
        self._num_classes = int(num_classes if num_classes is not None else len(classes))
        self._class_names = list(classes or [str(i) for i in range(self._num_classes)])
        if len(self._class_names) != self._num_classes:
            raise ValueError(f"num_classes={num_classes} but {len(classes)} stuff_classes")
        label = ignore_label if ignore_label is not None else self._metadata.get("ignore_label")
        self._ignore_label = 255 if label is None else int(label)
        self._loading_fn = sem_seg_loading_fn
        self._distributed = distributed
        self._output_dir = output_dir
        self._gt_files: dict[str, str] | None = None
        self.reset()

    def reset(self) -> None:
        hotcoco = require_hotcoco("SemSegEvaluator")
        self._eval = hotcoco.semantic.SemanticEval(
            self._num_classes, ignore_index=self._ignore_label
        )
        self._predictions: list[dict[str, Any]] = []

    def _gt_file(self, inp: dict) -> str:
        if "sem_seg_file_name" in inp:
            return inp["sem_seg_file_name"]
        if self._gt_files is None:
            self._gt_files = {
                d["file_name"]: d["sem_seg_file_name"]
                for d in DatasetCatalog.get(self._dataset_name)
                if "sem_seg_file_name" in d
            }
        if inp["file_name"] not in self._gt_files:
            raise ValueError(f"{self._dataset_name}: no sem_seg_file_name for {inp['file_name']}")
        return self._gt_files[inp["file_name"]]

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        n = self._num_classes
        for inp, out in zip(inputs, outputs):
            scores = out["sem_seg"]
            if scores.ndim != 3 or scores.shape[0] != n:
                raise ValueError(f"sem_seg output must be ({n}, H, W), got {tuple(scores.shape)}")
            pred = scores.argmax(dim=0).to("cpu", torch.int64).numpy()  # (H, W)
            path = self._gt_file(inp)
            gt = np.asarray(self._loading_fn(path), dtype=np.int64)
            if gt.shape != pred.shape:
                raise ValueError(f"{path}: label image is {gt.shape}, prediction {pred.shape}")
            try:
                self._eval.update(gt, pred)  # counts [ground truth, prediction] pairs
            except ValueError as e:
                raise ValueError(
                    f"{path}: {e} (classes 0..{n - 1}, ignore label {self._ignore_label})"
                ) from None
            if self._output_dir:
                self._predictions += self._encode(pred, inp["file_name"])

    def _encode(self, pred: np.ndarray, file_name: str) -> list[dict[str, Any]]:
        mapping = self._metadata.get("stuff_dataset_id_to_contiguous_id")
        reverse = {v: k for k, v in mapping.items()} if mapping else None
        labels = np.unique(pred)
        rles = encode_masks(pred[None] == labels[:, None, None])  # (L, H, W) masks
        return [
            {
                "file_name": file_name,
                "category_id": int(reverse[int(c)] if reverse else c),
                "segmentation": rle,
            }
            for c, rle in zip(labels, rles)
        ]

    def evaluate(self) -> dict[str, dict[str, float]]:
        """{"sem_seg": {mIoU, fwIoU, IoU-<class>..., mACC, pACC, ACC-<class>...}} in percent."""
        # (C, C) [ground truth, prediction] -> [prediction, ground truth]
        state = (self._eval.confusion().astype(np.int64).T, self._predictions)
        gathered = gather_to_main(state) if self._distributed else [state]
        if not gathered:
            return {}
        conf = np.sum([c for c, _ in gathered], axis=0)  # (C, C)
        if self._output_dir:
            predictions = [p for _, rank in gathered for p in rank]
            with atomic_open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                json.dump(predictions, f)
        res = sem_seg_metrics(conf, self._class_names)
        logger.info("Semantic segmentation results: mIoU %.3f, pACC %.3f", res["mIoU"], res["pACC"])
        return {"sem_seg": res}

"""Evaluation: COCO box/mask/keypoint AP, LVIS AP, panoptic quality, semantic segmentation mIoU.

Detectron2's evaluator API (`COCOEvaluator`, `LVISEvaluator`, `COCOPanopticEvaluator`,
`SemSegEvaluator`, `DatasetEvaluators`, `inference_on_dataset`, `print_csv_format`) plus
file-level functions: `coco_evaluate` (COCO results JSON vs ground truth) and `pq_compute`
(panopticapi's). The engine is hotcoco (pycocotools with `MASKTRON_COCO_ENGINE=pycocotools`).
"""

from masktron.evaluation.build import build_evaluator
from masktron.evaluation.coco_engine import CocoGroundTruth, coco_evaluate
from masktron.evaluation.coco_evaluation import COCOEvaluator, instances_to_coco_json
from masktron.evaluation.evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
)
from masktron.evaluation.lvis_evaluation import LVISEvaluator, lvis_evaluate
from masktron.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from masktron.evaluation.panoptic_pq import pq_compute
from masktron.evaluation.sem_seg_evaluation import SemSegEvaluator
from masktron.evaluation.table import create_small_table, print_csv_format

__all__ = [
    "COCOEvaluator",
    "COCOPanopticEvaluator",
    "CocoGroundTruth",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "LVISEvaluator",
    "SemSegEvaluator",
    "build_evaluator",
    "coco_evaluate",
    "create_small_table",
    "inference_context",
    "inference_on_dataset",
    "instances_to_coco_json",
    "lvis_evaluate",
    "pq_compute",
    "print_csv_format",
]

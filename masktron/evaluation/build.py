"""The evaluator a registered dataset asks for (its metadata's `evaluator_type`)."""

from __future__ import annotations

from masktron.data.catalog import MetadataCatalog
from masktron.evaluation.coco_evaluation import COCOEvaluator
from masktron.evaluation.evaluator import DatasetEvaluator, DatasetEvaluators
from masktron.evaluation.lvis_evaluation import LVISEvaluator
from masktron.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from masktron.evaluation.sem_seg_evaluation import SemSegEvaluator


def build_evaluator(
    dataset_name: str, output_dir: str | None = None, *, tasks: tuple[str, ...] | None = None
) -> DatasetEvaluator:
    """Evaluators for `dataset_name`, chosen as Detectron2's `train_net.py` chooses them.

    `evaluator_type` "coco": `COCOEvaluator`; "lvis": `LVISEvaluator`; "sem_seg":
    `SemSegEvaluator`; "coco_panoptic_seg": `COCOPanopticEvaluator`, plus `COCOEvaluator` when
    the metadata has an instances `json_file` and `SemSegEvaluator` when it has a `sem_seg_root`
    (Panoptic FPN's "separated" layout).

    Args:
        tasks: the COCO tasks to evaluate ("bbox", "segm", ...) for "coco" datasets, reported
            even when the model finds nothing; None infers them from the predictions.

    Raises:
        ValueError: the dataset has no (or an unknown) `evaluator_type`.
    """
    metadata = MetadataCatalog.get(dataset_name)
    kind = metadata.get("evaluator_type")
    evaluators: list[DatasetEvaluator] = []
    if kind == "coco":
        evaluators.append(COCOEvaluator(dataset_name, tasks, output_dir=output_dir))
    elif kind == "lvis":
        evaluators.append(LVISEvaluator(dataset_name, output_dir=output_dir))
    elif kind == "sem_seg":
        evaluators.append(SemSegEvaluator(dataset_name, output_dir=output_dir))
    elif kind == "coco_panoptic_seg":
        if metadata.get("sem_seg_root") is not None:
            evaluators.append(SemSegEvaluator(dataset_name, output_dir=output_dir))
        if metadata.get("json_file") is not None:
            evaluators.append(COCOEvaluator(dataset_name, output_dir=output_dir))
        evaluators.append(COCOPanopticEvaluator(dataset_name, output_dir=output_dir))
    else:
        raise ValueError(
            f"dataset {dataset_name!r} has evaluator_type {kind!r}; known: coco, lvis, sem_seg, "
            "coco_panoptic_seg (set it with MetadataCatalog.get(name).evaluator_type = ...)"
        )
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)

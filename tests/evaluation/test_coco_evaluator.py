"""`COCOEvaluator` on model-style `Instances`: Detectron2's layout, pycocotools' figures."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
import torch
from eval_helpers import load_gt, noisy_detections, pycocotools_reference, reference_per_category
from pycocotools import mask as mask_util

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.evaluation import COCOEvaluator, instances_to_coco_json
from masktron.structures import Boxes, Instances


def register(gt: dict, json_file: str | None) -> str:
    """Register the sample under a fresh name with Detectron2's COCO metadata."""
    name = f"coco_sample_eval_{uuid.uuid4().hex[:8]}"
    cat_ids = sorted(c["id"] for c in gt["categories"])
    names = {c["id"]: c["name"] for c in gt["categories"]}
    to_contiguous = {cid: i for i, cid in enumerate(cat_ids)}

    def dicts() -> list[dict]:
        records = []
        for image in gt["images"]:
            anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
            records.append(
                {
                    "file_name": image["file_name"],
                    "image_id": image["id"],
                    "height": image["height"],
                    "width": image["width"],
                    "annotations": [
                        {
                            "bbox": a["bbox"],
                            "bbox_mode": 1,
                            "category_id": to_contiguous[a["category_id"]],
                            "segmentation": a["segmentation"],
                            "iscrowd": a["iscrowd"],
                        }
                        for a in anns
                    ],
                }
            )
        return records

    DatasetCatalog.register(name, dicts)
    meta = MetadataCatalog.get(name)
    meta.set(
        thing_classes=[names[c] for c in cat_ids], thing_dataset_id_to_contiguous_id=to_contiguous
    )
    if json_file is not None:
        meta.set(json_file=json_file)
    return name


def model_outputs(gt: dict, dets: list[dict], with_masks: bool = True):
    """Per image, the (inputs, outputs) a model would give for these COCO results."""
    to_contiguous = {c: i for i, c in enumerate(sorted(c["id"] for c in gt["categories"]))}
    for image in gt["images"]:
        mine = [d for d in dets if d["image_id"] == image["id"]]
        boxes = torch.tensor([d["bbox"] for d in mine], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY
        inst = Instances((image["height"], image["width"]))
        inst.pred_boxes = Boxes(boxes)
        inst.scores = torch.tensor([d["score"] for d in mine], dtype=torch.float32)
        inst.pred_classes = torch.tensor([to_contiguous[d["category_id"]] for d in mine])
        if with_masks:
            masks = [mask_util.decode(d["segmentation"]).astype(bool) for d in mine]
            shape = (len(mine), image["height"], image["width"])
            inst.pred_masks = torch.from_numpy(np.array(masks).reshape(shape))
        inputs = {"image_id": image["id"], "file_name": image["file_name"]}
        yield [inputs | {"height": image["height"], "width": image["width"]}], [{"instances": inst}]


def run(evaluator, batches) -> dict:
    evaluator.reset()
    for inputs, outputs in batches:
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def check_against_pycocotools(gt: dict, written: list[dict], results: dict) -> None:
    """The evaluator's figures equal pycocotools' on the results file it wrote."""
    metrics = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for task in ("bbox", "segm"):
        dets = (
            written
            if task == "bbox"
            else [{k: v for k, v in d.items() if k != "bbox"} for d in written]
        )
        reference = pycocotools_reference(gt, dets, task)
        expected = {m: v * 100 if v >= 0 else math.nan for m, v in zip(metrics, reference.stats)}
        expected |= {f"AP-{names[c]}": ap for c, ap in reference_per_category(reference).items()}
        assert list(results[task])[:6] == metrics
        assert results[task] == pytest.approx(expected, nan_ok=True, abs=1e-6)


def test_evaluator_matches_pycocotools(coco_sample, tmp_path):
    path, gt = load_gt(coco_sample, "train")
    dets = noisy_detections(gt, seed=7)
    name = register(gt, path)
    evaluator = COCOEvaluator(name, output_dir=str(tmp_path), distributed=False)
    results = run(evaluator, model_outputs(gt, dets))
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert len(written) == len(dets)
    assert {d["category_id"] for d in written} <= {c["id"] for c in gt["categories"]}
    assert isinstance(written[0]["segmentation"]["counts"], str)
    assert set(results) == {"bbox", "segm"}
    check_against_pycocotools(gt, written, results)
    assert results["segm"]["AP-person"] > 0


def test_evaluator_converts_registered_dicts(coco_sample, tmp_path):
    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=8)
    name = register(gt, None)
    results = run(COCOEvaluator(name, output_dir=str(tmp_path)), model_outputs(gt, dets))
    assert (tmp_path / f"{name}_coco_format.json").is_file()
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    check_against_pycocotools(gt, written, results)


def test_tasks_follow_the_predictions(coco_sample):
    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=9)
    evaluator = COCOEvaluator(register(gt, path))
    assert set(run(evaluator, model_outputs(gt, dets, with_masks=False))) == {"bbox"}
    with pytest.raises(ValueError, match="missing 'segmentation'"):
        evaluator = COCOEvaluator(register(gt, path), tasks=("bbox", "segm"))
        run(evaluator, model_outputs(gt, dets, with_masks=False))
    with pytest.raises(ValueError, match="unsupported tasks"):
        COCOEvaluator(register(gt, path), tasks=("densepose",))


def test_no_detections_score_zero_and_bad_class_is_named(coco_sample):
    path, gt = load_gt(coco_sample, "val")
    evaluator = COCOEvaluator(register(gt, path), distributed=False)
    results = run(evaluator, model_outputs(gt, []))
    assert results["bbox"]["AP"] == 0.0 and math.isnan(results["bbox"]["AP-bicycle"])
    assert run(evaluator, []) == {}
    image = gt["images"][0]
    inst = Instances((image["height"], image["width"]))
    inst.pred_boxes = Boxes(torch.tensor([[1.0, 2.0, 30.0, 40.0]]))
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([80])
    with pytest.raises(ValueError, match="has class 80, but dataset .* has 80 classes"):
        run(evaluator, [([{"image_id": image["id"]}], [{"instances": inst}])])
    with pytest.raises(AssertionError):  # what Detectron2's evaluator raises
        run(evaluator, [([{"image_id": image["id"]}], [{"instances": inst}])])


def test_instances_to_coco_json():
    inst = Instances((4, 5))
    inst.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, 3.0, 4.0]]))
    inst.scores = torch.tensor([0.25])
    inst.pred_classes = torch.tensor([2])
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 1:4, 1:3] = True
    inst.pred_masks = mask
    (result,) = instances_to_coco_json(inst, 7)
    assert result["bbox"] == [1.0, 1.0, 2.0, 3.0]
    assert result | {"segmentation": None} == {
        "image_id": 7,
        "category_id": 2,
        "bbox": [1.0, 1.0, 2.0, 3.0],
        "score": 0.25,
        "segmentation": None,
    }
    decoded = mask_util.decode(
        result["segmentation"] | {"counts": result["segmentation"]["counts"]}
    )
    assert (decoded.astype(bool) == mask[0].numpy()).all()
    assert instances_to_coco_json(Instances((4, 5)), 7) == []

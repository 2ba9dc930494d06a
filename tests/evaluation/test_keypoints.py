"""Keypoint AP (OKS): hand-made cases, pycocotools run live, and COCOEvaluator on Instances."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
import torch
from eval_helpers import pycocotools_reference

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.evaluation import COCOEvaluator, coco_evaluate
from masktron.structures import Boxes, Instances

# COCO's 17 person keypoint sigmas (pycocotools' Params.setKpParams)
SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
) / 10.0  # fmt: skip
AREA = 10_000.0  # "large" (> 96^2)


def person(ann_id: int, image_id: int, x0: float, visible: int = 17) -> dict:
    """A person whose 17 keypoints lie on a row, the first `visible` of them labelled."""
    points = []
    for k in range(17):
        points += [x0 + 5.0 * k, 50.0 + k, 2 if k < visible else 0]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [x0, 40.0, 100.0, 100.0],
        "area": AREA,
        "iscrowd": 0,
        "keypoints": points,
        "num_keypoints": visible,
    }


def ground_truth(people: list[dict]) -> dict:
    images = [{"id": i, "height": 200, "width": 400, "file_name": f"{i}.jpg"} for i in (1, 2)]
    return {"images": images, "categories": [{"id": 1, "name": "person"}], "annotations": people}


def detection(gt: dict, oks: float, score: float) -> dict:
    """`gt`'s keypoints moved right so that every keypoint's similarity is exactly `oks`:
    exp(-d^2 / (2 area (2 sigma)^2)) = oks."""
    shift = SIGMAS * math.sqrt(8 * AREA * math.log(1 / oks))  # (17,) pixels
    points = np.array(gt["keypoints"], dtype=np.float64).reshape(17, 3)
    points[:, 0] += shift
    points[:, 2] = 1.0
    return {
        "image_id": gt["image_id"],
        "category_id": 1,
        "keypoints": points.ravel().tolist(),
        "score": score,
    }


@pytest.mark.parametrize("backend", ["hotcoco", "pycocotools"])
def test_oks_by_hand(backend):
    one, two = person(1, 1, 20.0), person(2, 2, 200.0)
    gt = ground_truth([one, two, person(3, 2, 20.0, visible=0)])  # the last: nothing to find
    # OKS 0.82 matches at thresholds 0.50 .. 0.80: 7 of the 10
    dets = [detection(one, 0.82, 0.9), detection(two, 0.82, 0.8)]
    res = coco_evaluate(gt, dets, "keypoints", backend=backend)
    assert res["AP"] == pytest.approx(70.0) and res["AP50"] == res["AP75"] == pytest.approx(100)
    assert res["APl"] == pytest.approx(70.0) and math.isnan(res["APm"])
    assert res["AR"] == pytest.approx(70.0) and res["AR50"] == pytest.approx(100.0)
    # a false positive (far from person two) ranked above the second person
    stray = detection(one, 0.82, 0.85) | {"image_id": 2}
    res = coco_evaluate(ground_truth([one, two]), [*dets, stray], "keypoints", backend=backend)
    # recall 0..0.5: precision 1; 0.5..1: 2/3 (the 3rd ranked is the TP): 51 and 50 of 101 points
    expected = 100 * (51 * 1.0 + 50 * 2 / 3) / 101 * 0.7
    assert res["AP"] == pytest.approx(expected)
    # OKS 0.3 finds nothing; a person with 5 keypoints labelled is judged on those 5 alone
    assert coco_evaluate(gt, [detection(one, 0.3, 0.9)], "keypoints")["AP"] == 0.0
    few = person(1, 1, 20.0, visible=5)
    res = coco_evaluate(ground_truth([few]), [detection(few, 0.93, 0.9)], "keypoints")
    assert res["AP"] == pytest.approx(90.0)  # matched at 0.50 .. 0.90


def test_matches_pycocotools_on_random_people():
    rng = np.random.default_rng(0)
    people, dets = [], []
    for k in range(40):
        gt = person(k + 1, 1 + k % 2, float(rng.uniform(0, 200)), visible=int(rng.integers(0, 18)))
        gt["area"] = float(rng.uniform(500, 20_000))
        gt["iscrowd"] = int(rng.random() < 0.1)
        people.append(gt)
        for _ in range(int(rng.integers(0, 3))):
            det = detection(gt, float(rng.uniform(0.2, 0.99)), float(rng.random()))
            det["keypoints"] = (np.array(det["keypoints"]) + rng.normal(0, 2, 51)).tolist()
            det["image_id"] = int(rng.integers(1, 3)) if rng.random() < 0.2 else det["image_id"]
            dets.append(det)
    gt = ground_truth(people)
    reference = pycocotools_reference(gt, dets, "keypoints")
    keys = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    for backend in ("hotcoco", "pycocotools"):
        ours = coco_evaluate(gt, dets, "keypoints", backend=backend)
        for key, value in zip(keys, reference.stats):
            assert ours[key] == pytest.approx(value * 100, abs=1e-9), (backend, key)


def test_evaluator_takes_pred_keypoints(tmp_path):
    """Instances with Detectron2's `pred_keypoints` (N, 17, 3): x, y, score in image pixels."""
    one, two = person(1, 1, 20.0), person(2, 2, 200.0)
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps(ground_truth([one, two])))
    name = f"keypoints_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(
        json_file=str(path), thing_classes=["person"], thing_dataset_id_to_contiguous_id={1: 0}
    )
    batches = []
    for ann in (one, two):
        # OKS 0.801: the 0.5 pixel offset, if lost, would take it below the 0.80 threshold
        points = np.array(detection(ann, 0.801, 1.0)["keypoints"]).reshape(17, 3)
        points[:, :2] += 0.5  # the model's continuous coordinates: pixel centres at +0.5
        inst = Instances((200, 400))
        inst.pred_boxes = Boxes(torch.tensor([[10.0, 30.0, 150.0, 150.0]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_classes = torch.tensor([0])
        inst.pred_keypoints = torch.from_numpy(points[None])  # (1, 17, 3)
        batches.append(([{"image_id": ann["image_id"]}], [{"instances": inst}]))

    def run(evaluator):
        for inputs, outputs in batches:
            evaluator.process(inputs, outputs)
        return evaluator.evaluate()

    res = run(COCOEvaluator(name, distributed=False))
    assert set(res) == {"bbox", "keypoints"}
    assert list(res["keypoints"]) == ["AP", "AP50", "AP75", "APm", "APl"]
    assert res["keypoints"]["AP"] == pytest.approx(70.0)
    with pytest.raises(ValueError, match="17 keypoints per instance but kpt_oks_sigmas has 3"):
        run(COCOEvaluator(name, distributed=False, kpt_oks_sigmas=[0.1] * 3))


@pytest.mark.parametrize("backend", ["hotcoco", "pycocotools"])
def test_evaluator_on_converted_dataset_dicts(backend):
    """A dataset registered as dicts only (no json_file): its conversion to COCO keeps the
    keypoints (0.5 less: COCO's pixel indices) and `num_keypoints` (given, or counted), so
    keypoint AP equals pycocotools' on the COCO file written by hand."""
    rng = np.random.default_rng(1)
    images = [{"id": i, "height": 200, "width": 400, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    people, records, batches = [], [], []
    for image in images:
        annotations, predicted = [], []
        for _ in range(int(rng.integers(1, 4))):
            x0, visible = float(rng.uniform(0, 250)), int(rng.integers(3, 18))
            gt = person(len(people) + 1, image["id"], x0, visible)
            size = float(rng.uniform(50, 130))  # medium and large people
            gt["bbox"] = [x0, 40.0, size, size]
            gt["area"] = size * size  # what the conversion takes without a mask: the box area
            people.append(gt)
            points = np.array(gt["keypoints"]).reshape(17, 3) + [0.5, 0.5, 0]  # (17, 3)
            ann = {"bbox": gt["bbox"], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}
            ann["keypoints"] = points.ravel().tolist()  # the COCO loader's: pixel centres
            if len(people) % 2:  # else the conversion counts the labelled ones
                ann["num_keypoints"] = visible
            annotations.append(ann)
            det = np.array(detection(gt, float(rng.uniform(0.4, 0.99)), 1.0)["keypoints"])
            predicted.append(det.reshape(17, 3) + [0.5, 0.5, 0])  # model coordinates
        records.append({"file_name": image["file_name"], "image_id": image["id"]})
        records[-1] |= {"height": 200, "width": 400, "annotations": annotations}
        inst = Instances((200, 400))
        inst.pred_boxes = Boxes(torch.tensor([[10.0, 30.0, 150.0, 150.0]] * len(predicted)))
        inst.scores = torch.from_numpy(rng.random(len(predicted)))
        inst.pred_classes = torch.zeros(len(predicted), dtype=torch.int64)
        inst.pred_keypoints = torch.from_numpy(np.stack(predicted))  # (n, 17, 3)
        batches.append(([{"image_id": image["id"]}], [{"instances": inst}]))
    name = f"keypoint_dicts_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(thing_classes=["person"])
    evaluator = COCOEvaluator(name, tasks=("keypoints",), distributed=False, backend=backend)
    dets = []
    for inputs, outputs in batches:
        evaluator.process(inputs, outputs)
        inst = outputs[0]["instances"]
        for score, points in zip(inst.scores.tolist(), inst.pred_keypoints.numpy()):
            dets.append({"image_id": inputs[0]["image_id"], "category_id": 1, "score": score})
            dets[-1]["bbox"] = [10.0, 30.0, 140.0, 120.0]  # its area sorts it by size
            dets[-1]["keypoints"] = (points - [0.5, 0.5, 0]).ravel().tolist()
    ours = evaluator.evaluate()["keypoints"]
    reference = pycocotools_reference(ground_truth(people) | {"images": images}, dets, "keypoints")
    assert 0 < reference.stats[0] < 1 and reference.stats[3] > 0
    for key, value in zip(["AP", "AP50", "AP75", "APm", "APl"], reference.stats):
        assert ours[key] == pytest.approx(value * 100, abs=1e-9), key

"""`COCOPanopticEvaluator` on model-style outputs equals `pq_compute` on the files it writes."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
import torch

from masktron.data.catalog import MetadataCatalog
from masktron.evaluation import COCOPanopticEvaluator, pq_compute
from masktron.evaluation.panoptic_pq import read_panoptic_png


def register(panoptic_sample) -> tuple[str, dict]:
    gt = json.loads((panoptic_sample / "panoptic_examples.json").read_text())
    things = [c["id"] for c in gt["categories"] if c["isthing"]]
    stuff = [c["id"] for c in gt["categories"] if not c["isthing"]]
    name = f"panoptic_sample_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(
        panoptic_json=str(panoptic_sample / "panoptic_examples.json"),
        panoptic_root=str(panoptic_sample / "panoptic_examples"),
        thing_dataset_id_to_contiguous_id={c: i for i, c in enumerate(things)},
        stuff_dataset_id_to_contiguous_id={c: i for i, c in enumerate(stuff)},
        label_divisor=1000,
    )
    return name, gt


def outputs_from_gt(panoptic_sample, gt: dict, drop_first_person: bool = False):
    """What a perfect model returns: contiguous ids with `isthing`, as Detectron2's models."""
    things = {c["id"]: i for i, c in enumerate(c for c in gt["categories"] if c["isthing"])}
    stuff = {c["id"]: i for i, c in enumerate(c for c in gt["categories"] if not c["isthing"])}
    for ann in gt["annotations"]:
        ids = read_panoptic_png(str(panoptic_sample / "panoptic_examples" / ann["file_name"]))
        segments = []
        for s in ann["segments_info"]:
            if drop_first_person and s["category_id"] == 1 and not s["iscrowd"]:
                ids[ids == s["id"]] = 0
                drop_first_person = False
                continue
            isthing = s["category_id"] in things
            cat = things[s["category_id"]] if isthing else stuff[s["category_id"]]
            segments.append({"id": s["id"], "category_id": cat, "isthing": isthing})
        inputs = {"image_id": ann["image_id"], "file_name": f"/photos/{ann['image_id']}.jpg"}
        yield [inputs], [{"panoptic_seg": (torch.from_numpy(ids.astype(np.int32)), segments)}]


def evaluate(evaluator, batches) -> dict:
    evaluator.reset()
    for inputs, outputs in batches:
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()


@pytest.mark.parametrize("drop", [False, True])
def test_evaluator_equals_pq_compute_on_its_files(panoptic_sample, tmp_path, drop):
    name, gt = register(panoptic_sample)
    evaluator = COCOPanopticEvaluator(name, output_dir=str(tmp_path), distributed=False)
    res = evaluate(evaluator, outputs_from_gt(panoptic_sample, gt, drop))["panoptic_seg"]
    files = pq_compute(
        panoptic_sample / "panoptic_examples.json", tmp_path / "predictions.json", progress=False
    )
    for suffix, group in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
        for key in ("pq", "sq", "rq"):
            assert res[key.upper() + suffix] == pytest.approx(100 * files[group][key])
    assert (res["PQ"] == 100.0) == (not drop)
    assert res["PQ-person"] == pytest.approx(100 * files["per_class"][1]["pq"])
    assert math.isnan(res["PQ-bicycle"])  # no bicycle anywhere


def test_outputs_without_segments_info(panoptic_sample):
    """Ids as class * label_divisor + instance with -1 VOID (Detectron2's second layout)."""
    name, gt = register(panoptic_sample)
    things = {c["id"]: i for i, c in enumerate(c for c in gt["categories"] if c["isthing"])}
    batches = []
    for ann in gt["annotations"]:
        ids = read_panoptic_png(str(panoptic_sample / "panoptic_examples" / ann["file_name"]))
        labels = np.full(ids.shape, -1, np.int64)
        for k, s in enumerate(ann["segments_info"]):
            if s["category_id"] in things:  # things only: stuff is left VOID
                labels[ids == s["id"]] = things[s["category_id"]] * 1000 + k
        batches.append(
            (
                [{"image_id": ann["image_id"], "file_name": "x.jpg"}],
                [{"panoptic_seg": (torch.from_numpy(labels), None)}],
            )
        )
    res = evaluate(COCOPanopticEvaluator(name, distributed=False), batches)["panoptic_seg"]
    assert res["PQ_th"] == 100.0 and res["PQ_st"] == 0.0 and res["RQ_st"] == 0.0


def test_unknown_image_and_class(panoptic_sample):
    name, gt = register(panoptic_sample)
    evaluator = COCOPanopticEvaluator(name)
    ids = torch.zeros(4, 4, dtype=torch.int32)
    with pytest.raises(ValueError, match="image id 5 is not in"):
        evaluator.process([{"image_id": 5, "file_name": "a.jpg"}], [{"panoptic_seg": (ids, [])}])
    segments = [{"id": 1, "category_id": 500, "isthing": True}]
    with pytest.raises(ValueError, match="thing class 500 has no dataset id"):
        image = {"image_id": gt["annotations"][0]["image_id"], "file_name": "a.jpg"}
        evaluator.process([image], [{"panoptic_seg": (ids + 1, segments)}])
    assert evaluate(evaluator, []) == {}

"""Proposal recall (Detectron2's AR@100/AR@1000): hand-computed cases and COCOEvaluator on the
real COCO sample, including the box_proposals.pkl it writes for Fast R-CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_helpers import load_gt
from test_coco_evaluator import register, run

from masktron.checkpoint.safe_pickle import load_pickle
from masktron.data import load_proposals_into_dataset
from masktron.evaluation import COCOEvaluator
from masktron.evaluation.proposal_recall import box_proposal_metrics, evaluate_box_proposals
from masktron.structures import Boxes, Instances

# gt 1: 20x20 (small, area 400); gt 2: 100x100 (large); gt 3: crowd (never counted)
GT = {
    "images": [{"id": 7, "height": 300, "width": 300}, {"id": 8, "height": 300, "width": 300}],
    "categories": [{"id": 1, "name": "thing"}],
    "annotations": [
        {"id": 1, "image_id": 7, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 7, "bbox": [100, 100, 100, 100], "area": 10000, "iscrowd": 0},
        {"id": 3, "image_id": 7, "bbox": [0, 200, 50, 50], "area": 2500, "iscrowd": 1},
    ],
}


def proposals(boxes, logits, image_id=7):
    return {"image_id": image_id, "boxes": np.array(boxes), "objectness_logits": np.array(logits)}


def test_recall_by_hand():
    # Proposal A equals gt 1 (IoU 1); proposal B covers gt 2 at IoU 0.64 (80x80 inside it).
    pred = [proposals([[0, 0, 20, 20], [110, 110, 190, 190]], [2.0, 1.0])]
    stats = evaluate_box_proposals(pred, GT)
    assert stats["num_pos"] == 2  # the crowd box is not counted
    # thresholds 0.5, 0.55, 0.6 see both boxes, the 7 higher ones only gt 1
    expected = torch.tensor([1.0] * 3 + [0.5] * 7)
    torch.testing.assert_close(stats["recalls"], expected)
    assert stats["ar"] == pytest.approx(0.65)
    assert evaluate_box_proposals(pred, GT, area="small")["ar"] == pytest.approx(1.0)
    assert evaluate_box_proposals(pred, GT, area="large")["ar"] == pytest.approx(0.3)
    assert evaluate_box_proposals(pred, GT, area="medium")["num_pos"] == 0


def test_limit_keeps_the_highest_objectness_and_matching_is_one_to_one():
    # The top-scored proposal covers gt 2 exactly, the second gt 1: with limit 1 only gt 2.
    pred = [proposals([[0, 0, 20, 20], [100, 100, 200, 200]], [1.0, 3.0])]
    assert evaluate_box_proposals(pred, GT, limit=1)["ar"] == pytest.approx(0.5)
    # One proposal equal to gt 2 and nothing near gt 1: it cannot count twice.
    twice = [proposals([[100, 100, 200, 200], [100, 100, 200, 200]], [1.0, 1.0])]
    assert evaluate_box_proposals(twice, GT)["ar"] == pytest.approx(0.5)


def test_images_without_proposals_are_skipped_and_empty_ranges_give_zero():
    pred = [proposals(np.zeros((0, 4)), np.zeros(0)), proposals([[0, 0, 5, 5]], [0.0], 8)]
    stats = evaluate_box_proposals(pred, GT)
    assert stats["num_pos"] == 0 and stats["ar"] == 0.0
    metrics = box_proposal_metrics([proposals([[0, 0, 20, 20]], [1.0])], GT)
    assert list(metrics) == [
        "AR@100",
        "ARs@100",
        "ARm@100",
        "ARl@100",
        "AR@1000",
        "ARs@1000",
        "ARm@1000",
        "ARl@1000",
    ]
    assert metrics["ARs@100"] == pytest.approx(100.0) and metrics["AR@100"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="area must be one of"):
        evaluate_box_proposals(pred, GT, area="huge")


def test_coco_evaluator_reports_proposal_recall_and_writes_a_proposal_file(coco_sample, tmp_path):
    path, gt = load_gt(coco_sample, "val")
    name = register(gt, path)
    g = torch.Generator().manual_seed(0)
    batches, counted = [], 0
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY: every gt box proposed exactly
        counted += sum(1 for a in anns if not a["iscrowd"]) if len(boxes) else 0
        noise = torch.rand(5, 4, generator=g) * 50
        boxes = torch.cat([boxes, noise.sort(dim=1).values])  # valid XYXY
        inst = Instances((image["height"], image["width"]))
        inst.proposal_boxes = Boxes(boxes)
        inst.objectness_logits = torch.rand(len(boxes), generator=g)
        batches.append(([{"image_id": image["id"]}], [{"proposals": inst}]))
    results = run(COCOEvaluator(name, output_dir=str(tmp_path), distributed=False), batches)
    assert set(results) == {"box_proposals"}
    # every non-crowd box is proposed exactly, so at 1000 proposals the recall is complete
    assert results["box_proposals"]["AR@1000"] == pytest.approx(100.0)
    assert 0 < results["box_proposals"]["AR@100"] <= 100.0
    written = load_pickle(tmp_path / "box_proposals.pkl")  # readable by the safe loader
    assert written["ids"] == [image["id"] for image in gt["images"]]
    assert written["bbox_mode"] == 0 and len(written["boxes"]) == len(gt["images"])
    np.testing.assert_array_equal(
        written["boxes"][0], batches[0][1][0]["proposals"].proposal_boxes.tensor.numpy()
    )
    assert counted > 0
    # the file is what a Fast R-CNN's DATASETS.PROPOSAL_FILES_* read
    dicts = [{"image_id": image["id"]} for image in gt["images"]]
    load_proposals_into_dataset(dicts, tmp_path / "box_proposals.pkl")
    inst = batches[0][1][0]["proposals"]
    order = torch.sort(inst.objectness_logits, descending=True, stable=True).indices
    np.testing.assert_array_equal(dicts[0]["proposal_boxes"], inst.proposal_boxes.tensor[order])

"""LVIS AP on a hand-made LVIS v1 file whose figures are worked out by hand."""

from __future__ import annotations

import json
import uuid

import pytest
import torch

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.lvis import register_lvis_instances
from masktron.evaluation import LVISEvaluator, build_evaluator, lvis_evaluate
from masktron.structures import Boxes, Instances


def box(x: float, y: float, w: float, h: float) -> list[float]:
    return [float(x), float(y), float(w), float(h)]


# image 1: a frequent thing; the rare one verified absent. image 2: a common and a rare thing,
# the frequent one verified absent, the common one not exhaustively annotated.
GT = {
    "images": [
        {"id": 1, "height": 200, "width": 200, "neg_category_ids": [1]}
        | {"not_exhaustive_category_ids": []},
        {"id": 2, "height": 200, "width": 200, "neg_category_ids": [3]}
        | {"not_exhaustive_category_ids": [2]},
    ],
    "categories": [
        {"id": 1, "name": "rare_thing", "frequency": "r"},
        {"id": 2, "name": "common_thing", "frequency": "c"},
        {"id": 3, "name": "frequent_thing", "frequency": "f"},
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": box(10, 10, 20, 20), "area": 400.0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": box(10, 10, 50, 50), "area": 2500.0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": box(80, 80, 110, 110), "area": 12100.0},
    ],
}
DETS = [
    # image 1: the frequent thing found; a rare thing (verified absent: a false positive); a
    # common thing (neither present nor verified absent: not judged)
    {"image_id": 1, "category_id": 3, "bbox": box(10, 10, 20, 20), "score": 0.9},
    {"image_id": 1, "category_id": 1, "bbox": box(100, 100, 20, 20), "score": 0.8},
    {"image_id": 1, "category_id": 2, "bbox": box(150, 150, 20, 20), "score": 0.85},
    # image 2: the common thing found, and a stray one (not exhaustive: not a false positive);
    # the rare thing found; a frequent thing (verified absent: a false positive)
    {"image_id": 2, "category_id": 2, "bbox": box(10, 10, 50, 50), "score": 0.7},
    {"image_id": 2, "category_id": 2, "bbox": box(120, 10, 50, 50), "score": 0.95},
    {"image_id": 2, "category_id": 1, "bbox": box(80, 80, 110, 110), "score": 0.6},
    {"image_id": 2, "category_id": 3, "bbox": box(10, 150, 20, 20), "score": 0.5},
]


def test_lvis_protocol_by_hand():
    res = lvis_evaluate(GT, DETS, "bbox")
    # frequent: TP (0.9) before its false positive (0.5): AP 1. rare: the false positive (0.8)
    # before the TP (0.6): precision 1/2 at every recall: AP 0.5. common: the stray is not
    # judged: AP 1. Exact boxes: the same at every IoU threshold.
    assert res["APr"] == pytest.approx(50.0)
    assert res["APc"] == pytest.approx(100.0) and res["APf"] == pytest.approx(100.0)
    for key in ("AP", "AP50", "AP75"):
        assert res[key] == pytest.approx(100 * 2.5 / 3)
    # large: only the rare thing; its false positive is small, so out of the range: AP 1
    assert res["APl"] == pytest.approx(100.0)
    assert res["AP-rare_thing"] == pytest.approx(50.0)
    # 1 detection per image over all categories: image 2 keeps only the stray common thing
    capped = lvis_evaluate(GT, DETS, "bbox", max_dets=1)
    assert capped["AP"] == pytest.approx(100 / 3)
    assert capped["APr"] == 0.0 and capped["APc"] == 0.0 and capped["APf"] == pytest.approx(100)


def test_lvis_evaluator_on_instances(tmp_path):
    path = tmp_path / "lvis_v1_tiny.json"
    path.write_text(json.dumps(GT))
    name = f"lvis_tiny_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(json_file=str(path), evaluator_type="lvis")
    evaluator = build_evaluator(name, output_dir=str(tmp_path))
    assert isinstance(evaluator, LVISEvaluator)
    evaluator.reset()
    for image_id in (1, 2):
        mine = [d for d in DETS if d["image_id"] == image_id]
        xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)])
        inst = Instances((200, 200))
        inst.pred_boxes = Boxes(xyxy)
        inst.scores = torch.tensor([d["score"] for d in mine])
        inst.pred_classes = torch.tensor([d["category_id"] - 1 for d in mine])  # contiguous
        evaluator.process([{"image_id": image_id}], [{"instances": inst}])
    res = evaluator.evaluate()
    assert list(res) == ["bbox"]
    assert list(res["bbox"]) == ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"]
    assert res["bbox"]["AP"] == pytest.approx(100 * 2.5 / 3) and res["bbox"]["APr"] == 50.0
    written = json.loads((tmp_path / "lvis_instances_results.json").read_text())
    assert sorted(d["category_id"] for d in written) == sorted(d["category_id"] for d in DETS)


def test_lvis_ground_truth_is_checked():
    no_frequency = json.loads(json.dumps(GT))
    del no_frequency["categories"][1]["frequency"]
    with pytest.raises(ValueError, match=r"categories\[1\] needs 'frequency'"):
        lvis_evaluate(no_frequency, DETS)
    unknown = json.loads(json.dumps(GT))
    unknown["images"][0]["neg_category_ids"] = [7]
    with pytest.raises(ValueError, match=r"images\[0\] \(id 1\): 'neg_category_ids'"):
        lvis_evaluate(unknown, DETS)


def test_lvis_v1_names_and_loader(tmp_path):
    assert MetadataCatalog.get("lvis_v1_val").evaluator_type == "lvis"
    assert MetadataCatalog.get("lvis_v1_val").json_file.endswith("lvis/lvis_v1_val.json")
    data = json.loads(json.dumps(GT))
    for image in data["images"]:
        image["coco_url"] = f"http://images.cocodataset.org/val2017/{image['id']:012d}.jpg"
    data["annotations"][0]["segmentation"] = [[10, 10, 30, 10, 30, 30], [1, 2]]
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(data))
    name = f"lvis_load_{uuid.uuid4().hex[:8]}"
    register_lvis_instances(name, {}, path, tmp_path / "coco")
    records = DatasetCatalog.get(name)
    assert records[0]["file_name"] == str(tmp_path / "coco" / "val2017" / "000000000001.jpg")
    assert records[1]["neg_category_ids"] == [3]
    assert records[1]["not_exhaustive_category_ids"] == [2]
    assert [a["category_id"] for a in records[1]["annotations"]] == [1, 0]  # LVIS id - 1
    assert records[0]["annotations"][0]["segmentation"] == [[10, 10, 30, 10, 30, 30]]
    assert MetadataCatalog.get(name).thing_classes == ["rare_thing", "common_thing"] + [
        "frequent_thing"
    ]

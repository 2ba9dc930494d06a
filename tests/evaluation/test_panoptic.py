"""Panoptic quality: hand-computed cases, panopticapi's sample, and the COCO panoptic rules."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from masktron.evaluation import pq_compute
from masktron.evaluation.panoptic_pq import id_to_rgb, pq_with_occurring, read_panoptic_png

CATS = [
    {"id": 1, "name": "a", "isthing": 1},
    {"id": 2, "name": "b", "isthing": 1},
    {"id": 3, "name": "c", "isthing": 0},
]


def stats(tmp_path, gt_ids, gt_segments, pred_ids, pred_segments):
    """{category: [iou, tp, fp, fn]} of one tiny image, read back from pq_compute's figures."""
    for name, ids, segments in (("gt", gt_ids, gt_segments), ("pred", pred_ids, pred_segments)):
        (tmp_path / name).mkdir(exist_ok=True)
        Image.fromarray(id_to_rgb(np.array([ids]))).save(tmp_path / name / "1.png")
        annotation = {"image_id": 1, "file_name": "1.png", "segments_info": segments}
        data = {"images": [{"id": 1, "file_name": "1.jpg", "height": 1, "width": len(ids)}]}
        data |= {"categories": CATS, "annotations": [annotation]}
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    res, occurring = pq_with_occurring(tmp_path / "gt.json", tmp_path / "pred.json")
    assert res == pq_compute(tmp_path / "gt.json", tmp_path / "pred.json")
    return {c: v for c, v in res["per_class"].items() if c in occurring}


def figures(counts: dict) -> dict:
    """{category: [iou, tp, fp, fn]} -> the PQ, SQ, RQ they give."""
    out = {}
    for cat, (iou, tp, fp, fn) in counts.items():
        denominator = tp + 0.5 * fp + 0.5 * fn
        value = {"pq": iou / denominator, "sq": iou / tp if tp else 0.0, "rq": tp / denominator}
        out[cat] = pytest.approx(value)
    return out


def seg(sid, cat, area=None, crowd=0):
    return {"id": sid, "category_id": cat, "iscrowd": crowd} | ({"area": area} if area else {})


def test_iou_must_exceed_one_half(tmp_path):
    gt = [1, 1, 1, 1, 2, 2, 2, 2]
    gt_segs = [seg(1, 1, 4), seg(2, 3, 4)]
    # prediction 7 covers 2 of the 4 pixels of segment 1 (and nothing else): IoU = 2/4 = 0.5
    half = stats(tmp_path, gt, gt_segs, [7, 7, 0, 0, 9, 9, 9, 9], [seg(7, 1), seg(9, 3)])
    assert half == figures({1: [0, 0, 1, 1], 3: [1, 1, 0, 0]})
    # 3 of 4 pixels: IoU = 3/4 matches
    three = stats(tmp_path, gt, gt_segs, [7, 7, 7, 0, 9, 9, 9, 9], [seg(7, 1), seg(9, 3)])
    assert three == figures({1: [0.75, 1, 0, 0], 3: [1, 1, 0, 0]})
    # same pixels, wrong category: a miss and a false positive
    wrong = stats(tmp_path, gt, gt_segs, [7, 7, 7, 7, 9, 9, 9, 9], [seg(7, 2), seg(9, 3)])
    assert wrong == figures({1: [0, 0, 0, 1], 2: [0, 0, 1, 0], 3: [1, 1, 0, 0]})


def test_void_pixels_leave_the_union(tmp_path):
    # the prediction spills 2 pixels onto VOID: union = 6 + 4 - 4 - 2 = 4, IoU = 1
    got = stats(tmp_path, [0, 0, 1, 1, 1, 1], [seg(1, 1, 4)], [5] * 6, [seg(5, 1)])
    assert got == figures({1: [1, 1, 0, 0]})
    # spilling onto another segment does count: IoU = 4 / 6
    gt_segs = [seg(1, 1, 4), seg(2, 3, 2)]
    got = stats(tmp_path, [2, 2, 1, 1, 1, 1], gt_segs, [5] * 6, [seg(5, 1)])
    assert got == figures({1: [4 / 6, 1, 0, 0], 3: [0, 0, 0, 1]})


def test_unmatched_prediction_on_void_or_own_crowd_is_not_a_false_positive(tmp_path):
    gt = [0, 0, 0, 4, 4, 4, 4, 1, 1]
    gt_segs = [seg(4, 1, 4, crowd=1), seg(1, 3, 2)]
    only_stuff = figures({3: [1, 1, 0, 0]})
    stuff_and_fp = figures({2: [0, 0, 1, 0], 3: [1, 1, 0, 0]})

    def run(pred, cat):
        return stats(tmp_path, gt, gt_segs, pred, [seg(8, cat), seg(9, 3)])

    # 3 of 5 pixels on VOID: ignored; 2 of 5: a false positive
    assert run([8, 8, 8, 8, 8, 0, 0, 9, 9], 2) == only_stuff
    assert run([0, 8, 8, 8, 8, 8, 0, 9, 9], 2) == stuff_and_fp
    # on the crowd region: ignored for its own category (1), a false positive for another (2)
    assert run([0, 0, 0, 8, 8, 8, 8, 9, 9], 1) == only_stuff
    assert run([0, 0, 0, 8, 8, 8, 8, 9, 9], 2) == stuff_and_fp
    # void + crowd of its own category add up: 1 + 2 of 4 pixels
    assert run([0, 0, 8, 8, 8, 0, 0, 9, 9], 1) == only_stuff


@pytest.fixture
def sample(panoptic_sample, tmp_path):
    """The ground truth, and a writable copy of it as the prediction to perturb."""
    gt_json = panoptic_sample / "panoptic_examples.json"
    gt = json.loads(gt_json.read_text())
    pred_dir = tmp_path / "pred"
    shutil.copytree(panoptic_sample / "panoptic_examples", pred_dir)
    ids = {
        a["file_name"]: read_panoptic_png(str(pred_dir / a["file_name"])) for a in gt["annotations"]
    }
    return gt_json, panoptic_sample / "panoptic_examples", gt, pred_dir, ids


def save(tmp_path, pred: dict, pred_dir, ids: dict) -> str:
    for name, array in ids.items():
        Image.fromarray(id_to_rgb(array)).save(pred_dir / name)
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(pred))
    return str(path)


def perfect_counts(gt: dict) -> tuple[int, int]:
    """(things, stuff) categories with a non-crowd segment, or a crowd one predicted as itself."""
    isthing = {c["id"]: c["isthing"] for c in gt["categories"]}
    used = {
        s["category_id"] for a in gt["annotations"] for s in a["segments_info"] if not s["iscrowd"]
    }
    return sum(isthing[c] for c in used), sum(1 - isthing[c] for c in used)


def test_perfect_prediction_scores_100(sample, tmp_path):
    gt_json, gt_dir, gt, pred_dir, ids = sample
    res = pq_compute(gt_json, gt_json, gt_dir, gt_dir)
    things, stuff = perfect_counts(gt)
    assert things > 0 and stuff > 0
    for group, n in (("All", things + stuff), ("Things", things), ("Stuff", stuff)):
        assert res[group] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": n}
    assert all(res["per_class"][c]["pq"] in (0.0, 1.0) for c in res["per_class"])
    assert len(res["per_class"]) == len(gt["categories"])


def test_perturbed_prediction_by_hand(sample, tmp_path):
    gt_json, gt_dir, gt, pred_dir, ids = sample
    things, stuff = perfect_counts(gt)
    pred = copy.deepcopy(gt)
    ann0, ann1 = pred["annotations"]
    isthing = {c["id"]: c["isthing"] for c in gt["categories"]}
    # 1) drop a person (a thing) of image 0: its pixels become VOID in the prediction
    person = next(s for s in ann0["segments_info"] if s["category_id"] == 1 and not s["iscrowd"])
    ids[ann0["file_name"]][ids[ann0["file_name"]] == person["id"]] = 0
    ann0["segments_info"].remove(person)
    people = sum(
        s["category_id"] == 1 and not s["iscrowd"]
        for a in gt["annotations"]
        for s in a["segments_info"]
    )
    # 2) shrink the largest stuff segment of image 1 by a quarter: IoU = (A - k) / A
    big = max(
        (s for s in ann1["segments_info"] if not isthing[s["category_id"]]), key=lambda s: s["area"]
    )
    pixels = np.flatnonzero(ids[ann1["file_name"]] == big["id"])
    assert len(pixels) == big["area"]
    k = big["area"] // 4
    ids[ann1["file_name"]].flat[pixels[:k]] = 0
    same_stuff = sum(
        s["category_id"] == big["category_id"]
        for a in gt["annotations"]
        for s in a["segments_info"]
    )
    res = pq_compute(gt_json, save(tmp_path, pred, pred_dir, ids), gt_dir, pred_dir)

    person_pq = (people - 1) / (people - 1 + 0.5)
    stuff_sq = (same_stuff - 1 + (big["area"] - k) / big["area"]) / same_stuff
    assert res["per_class"][1] == pytest.approx({"pq": person_pq, "sq": 1.0, "rq": person_pq})
    assert res["per_class"][big["category_id"]] == pytest.approx(
        {"pq": stuff_sq, "sq": stuff_sq, "rq": 1.0}
    )
    assert res["Things"]["pq"] == pytest.approx((things - 1 + person_pq) / things)
    assert res["Stuff"]["pq"] == pytest.approx((stuff - 1 + stuff_sq) / stuff)
    assert res["All"]["pq"] == pytest.approx(
        (things + stuff - 2 + person_pq + stuff_sq) / (things + stuff)
    )
    assert res["All"]["rq"] == pytest.approx((things + stuff - 1 + person_pq) / (things + stuff))


def test_crowd_predicted_as_another_class_is_a_false_positive(sample, tmp_path):
    gt_json, gt_dir, gt, pred_dir, ids = sample
    things, stuff = perfect_counts(gt)
    pred = copy.deepcopy(gt)
    crowd = next(s for s in pred["annotations"][0]["segments_info"] if s["iscrowd"])
    used = {s["category_id"] for a in gt["annotations"] for s in a["segments_info"]}
    absent = next(c["id"] for c in gt["categories"] if c["isthing"] and c["id"] not in used)
    crowd["category_id"] = absent
    res = pq_compute(gt_json, save(tmp_path, pred, pred_dir, ids), gt_dir, pred_dir)
    assert res["per_class"][absent] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    assert res["Things"] == pytest.approx(
        {
            "pq": things / (things + 1),
            "sq": things / (things + 1),
            "rq": things / (things + 1),
            "n": things + 1,
        }
    )
    assert res["Stuff"]["pq"] == 1.0


def test_bad_predictions_are_named(sample, tmp_path):
    gt_json, gt_dir, gt, pred_dir, ids = sample
    name0 = gt["annotations"][0]["file_name"]

    def check(pred, message, pred_ids=ids):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            pq_compute(gt_json, save(tmp_path, pred, pred_dir, pred_ids), gt_dir, pred_dir)

    pred = copy.deepcopy(gt)
    lost = pred["annotations"][0]["segments_info"].pop()
    check(pred, rf"image 142238: predicted segment {lost['id']} is in the PNG but not in")
    pred = copy.deepcopy(gt)
    pred["annotations"][0]["segments_info"].append(seg(12345, 1))
    check(pred, r"pred\.json .*image 142238: predicted segment 12345 is in segments_info but not")
    pred = copy.deepcopy(gt)
    pred["annotations"][0]["segments_info"][0]["category_id"] = 12
    check(pred, "unknown category_id 12")
    pred = copy.deepcopy(gt)
    pred["annotations"][0]["segments_info"].append(pred["annotations"][0]["segments_info"][0])
    check(pred, "appears twice")
    pred = copy.deepcopy(gt)
    pred["annotations"].pop()
    check(pred, "no prediction for image id 439180")
    shifted = dict(ids) | {name0: ids[name0][:-1]}
    check(copy.deepcopy(gt), "ground truth is 427×640 but the prediction is 426×640", shifted)
    with pytest.raises(FileNotFoundError, match="folder of prediction PNGs"):
        pq_compute(gt_json, gt_json, gt_dir, tmp_path / "missing")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(pred_dir / name0)
    with pytest.raises(ValueError, match=f"{name0} is Grayscale; .* encodes segment ids as RGB"):
        pq_compute(gt_json, gt_json, gt_dir, pred_dir)

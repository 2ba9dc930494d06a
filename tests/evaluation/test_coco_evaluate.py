"""`coco_evaluate` against pycocotools, run live on real COCO annotations with crowd regions."""

from __future__ import annotations

import json
import math

import pytest
from eval_helpers import (
    load_gt,
    noisy_detections,
    pycocotools_reference,
    reference_per_category,
    reference_stats,
)

from masktron.evaluation import CocoGroundTruth, coco_evaluate

BACKENDS = ["hotcoco", "pycocotools"]


def assert_same(ours: dict, reference: dict, tol: float = 1e-9) -> None:
    """Equal figures (percent) to `tol`; NaN (nothing to find) must match NaN."""
    for key, ref in reference.items():
        if math.isnan(ref):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(ref, abs=tol), key


def per_category(gt: dict, evaluator) -> dict[str, float]:
    names = {c["id"]: c["name"] for c in gt["categories"]}
    return {f"AP-{names[c]}": ap for c, ap in reference_per_category(evaluator).items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("split", ["val", "train"])
def test_matches_pycocotools(coco_sample, split, iou_type, backend):
    path, gt = load_gt(coco_sample, split)
    dets = noisy_detections(gt, seed={"val": 0, "train": 1}[split])
    reference = pycocotools_reference(gt, dets, iou_type)
    ours = coco_evaluate(path, dets, iou_type, backend=backend)
    assert_same(ours, reference_stats(reference))
    assert_same(ours, per_category(gt, reference))
    assert 5 < ours["AP"] < 95  # the noise leaves something to measure
    assert len(ours) == 12 + len(gt["categories"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ties_and_more_than_100_per_image(coco_sample, iou_type, backend):
    path, gt = load_gt(coco_sample, "train")
    dets = noisy_detections(gt, seed=2, ties=True, crowd_of=150)
    reference = pycocotools_reference(gt, dets, iou_type)
    ours = coco_evaluate(path, dets, iou_type, backend=backend)
    assert_same(ours, reference_stats(reference))
    assert_same(ours, per_category(gt, reference))


def test_segm_without_boxes_uses_mask_area(coco_sample):
    path, gt = load_gt(coco_sample, "train")
    dets = [{k: v for k, v in d.items() if k != "bbox"} for d in noisy_detections(gt, seed=3)]
    reference = pycocotools_reference(gt, dets, "segm")
    assert_same(coco_evaluate(path, dets, "segm"), reference_stats(reference))


def test_file_dict_and_reused_ground_truth_agree(coco_sample, tmp_path):
    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=4)
    results_file = tmp_path / "dets.json"
    results_file.write_text(json.dumps(dets))
    from_files = coco_evaluate(path, results_file, "segm")
    shared = CocoGroundTruth.load(gt)
    same = coco_evaluate(path, dets, "bbox")
    assert coco_evaluate(shared, dets, "bbox") == pytest.approx(same, nan_ok=True, abs=0)
    assert coco_evaluate(shared, dets, "segm") == pytest.approx(from_files, nan_ok=True, abs=0)
    assert coco_evaluate(shared, dets, "segm", backend="pycocotools") == pytest.approx(
        from_files, nan_ok=True, abs=1e-9
    )


def test_caller_data_is_not_modified(coco_sample):
    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=5)
    before_dets, before_gt = json.dumps(dets), json.dumps(gt)
    coco_evaluate(gt, dets, "segm", backend="pycocotools")
    coco_evaluate(gt, dets, "bbox")
    assert json.dumps(dets) == before_dets and json.dumps(gt) == before_gt


def test_img_ids_subset(coco_sample):
    path, gt = load_gt(coco_sample, "train")
    dets = noisy_detections(gt, seed=6)
    subset = [im["id"] for im in gt["images"][:10]]
    reference = pycocotools_reference(gt, dets, "bbox", img_ids=subset)
    assert_same(coco_evaluate(path, dets, "bbox", img_ids=subset), reference_stats(reference))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_detections_give_zero(coco_sample, backend):
    path, gt = load_gt(coco_sample, "val")
    ours = coco_evaluate(path, [], "segm", backend=backend)
    reference = pycocotools_reference(gt, [], "segm")
    assert_same(ours, reference_stats(reference))
    assert_same(ours, per_category(gt, reference))
    assert ours["AP"] == 0.0 and ours["AR100"] == 0.0


def test_polygon_and_uncompressed_results_equal_rle(coco_sample):
    path, gt = load_gt(coco_sample, "val")
    image = gt["images"][0]
    h, w = image["height"], image["width"]
    square = [10.0, 10.0, 60.0, 10.0, 60.0, 50.0, 10.0, 50.0]
    base = {"image_id": image["id"], "category_id": 1, "score": 0.9}
    polygon = coco_evaluate(path, [base | {"segmentation": [square]}], "segm")
    from pycocotools import mask as mask_util

    rle = mask_util.merge(mask_util.frPyObjects([square], h, w))
    compressed = coco_evaluate(
        path, [base | {"segmentation": {"size": [h, w], "counts": rle["counts"].decode()}}], "segm"
    )
    mask = mask_util.decode(rle).flatten(order="F")
    runs, value, count = [], 0, 0
    for pixel in mask:
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    plain = coco_evaluate(path, [base | {"segmentation": {"size": [h, w], "counts": runs}}], "segm")
    assert polygon == pytest.approx(compressed, nan_ok=True)
    assert plain == pytest.approx(compressed, nan_ok=True)

"""Bad ground truth or results: a clear ValueError/OSError naming file and field, never a crash
or a hang inside an engine (hotcoco or pycocotools)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import load_gt
from pycocotools import mask as mask_util

from masktron.evaluation import coco_evaluate
from masktron.evaluation.rle import check_compressed_rles


@pytest.fixture(scope="module")
def val(coco_sample):
    return load_gt(coco_sample, "val")


def one(gt: dict, **changes) -> dict:
    image = gt["images"][0]
    det = {"image_id": image["id"], "category_id": 1, "bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.5}
    return det | changes


def test_well_formed_rles_pass():
    rng = np.random.default_rng(0)
    rles, sizes = [], []
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        mask[:] = 0 if i % 7 == 0 else mask
        mask[:] = 1 if i % 11 == 0 else mask
        rles.append(mask_util.encode(np.asfortranarray(mask)))
        sizes.append((h, w))
    assert not check_compressed_rles(rles, sizes).any()


@pytest.mark.parametrize("counts", ["zzzz", "P1~", "P1P", "P5", "`", "P13700000l05", "d"])
def test_malformed_rle_strings_are_caught(counts):
    # out of the alphabet ("zzzz", "~"), cut short ("P1P", "d": pycocotools reads past the
    # string), negative ("`") or past the image's 100 pixels (the others)
    rles = [{"size": [10, 10], "counts": c} for c in ("R1", counts, "R1")]
    assert check_compressed_rles(rles, [(10, 10)] * 3).tolist() == [False, True, False]


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"size": [10, 10], "counts": "zzzz"}, "is not the image's"),
        ("not a mask", "polygons"),
        ([[1.0, 2.0, 3.0]], "at least 3 points"),
        ({"size": [0, 0], "counts": 5}, "is not the image's"),
    ],
)
def test_bad_segmentations(val, segmentation, message):
    path, gt = val
    with pytest.raises(ValueError, match=message):
        coco_evaluate(path, [one(gt, segmentation=segmentation)], "segm")


def test_malformed_rle_of_the_right_size(val):
    path, gt = val
    image = gt["images"][0]
    rle = {"size": [image["height"], image["width"]], "counts": "zzzz"}
    with pytest.raises(ValueError, match=r"result #0 .*malformed RLE"):
        coco_evaluate(path, [one(gt, segmentation=rle)], "segm")
    short = {"size": rle["size"], "counts": [5, 5]}
    with pytest.raises(ValueError, match="sum to 10"):
        coco_evaluate(path, [one(gt, segmentation=short)], "segm")


def _compress_runs(runs: list[int]) -> str:
    """Runs in COCO's compressed RLE string form, any runs (negative ones too)."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(48 + (c | 0x20 if more else c)))
    return "".join(out)


@pytest.mark.parametrize("runs", ["past", "negative", "cut short"])
@pytest.mark.parametrize("backend", ["hotcoco", "pycocotools"])
def test_malformed_rles_among_good_ones(val, runs, backend):
    """Runs only decoding finds, or a string cut short, in results with boxes (with hotcoco
    checked while its evaluate runs): our error, naming the result."""
    path, gt = val
    image = gt["images"][0]
    h, w = image["height"], image["width"]
    counts = [5, 10, h * w] if runs == "past" else [5, 10, -3, h * w - 12]
    assert (
        _compress_runs([5, 10, h * w - 15])
        == mask_util.frPyObjects({"size": [h, w], "counts": [5, 10, h * w - 15]}, h, w)[
            "counts"
        ].decode()
    )
    good = mask_util.encode(np.asfortranarray(np.ones((h, w), np.uint8)))["counts"].decode()
    results = [
        one(gt, segmentation={"size": [h, w], "counts": c})
        for c in (good, _compress_runs(counts) + ("P" if runs == "cut short" else ""), good)
    ]
    with pytest.raises(ValueError, match=r"result #1 .*malformed RLE"):
        coco_evaluate(path, results, "segm", backend=backend)
    results[1]["segmentation"]["counts"] = good
    assert coco_evaluate(path, results, "segm", backend=backend)["AP"] >= 0


def test_unknown_image_and_category_are_listed(val):
    path, gt = val
    with pytest.raises(ValueError, match=r"results: 2 results are on images not in .*123456789"):
        results = [one(gt, image_id=123456789), one(gt, image_id=-1), one(gt)]
        coco_evaluate(path, results, "bbox")
    with pytest.raises(ValueError, match=r"category_id not in .*\[12\]"):  # 12 is not a COCO id
        coco_evaluate(path, [one(gt, category_id=12)], "bbox")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"score": float("nan")}, "'score' must be a finite number"),
        ({"score": "high"}, "'score' must be a finite number"),
        ({"bbox": [1, 2, 3]}, "'bbox' must be 4 finite numbers"),
        ({"bbox": [1, 2, -3, 4]}, "negative size"),
    ],
)
def test_bad_fields(val, change, message):
    path, gt = val
    with pytest.raises(ValueError, match=message):
        coco_evaluate(path, [one(gt, **change)], "bbox")


def test_numpy_float64_scores_are_numbers(val):
    """Scores given as numpy float64 scalars (a float subclass, not a JSON type) score as the
    same floats."""
    path, gt = val
    plain = coco_evaluate(path, [one(gt, score=0.5), one(gt, score=0.25)], "bbox")
    numpy = [one(gt, score=np.float64(0.5)), one(gt, score=np.float64(0.25))]
    assert coco_evaluate(path, numpy, "bbox") == pytest.approx(plain, nan_ok=True)
    with pytest.raises(ValueError, match="result #1: 'score' must be a finite number"):
        coco_evaluate(path, [one(gt), one(gt, score=np.float64("nan"))], "bbox")


def test_missing_fields_and_wrong_types(val):
    path, gt = val
    det = one(gt)
    del det["score"]
    with pytest.raises(ValueError, match=r"result #0: missing 'score'"):
        coco_evaluate(path, [det], "bbox")
    with pytest.raises(ValueError, match="missing 'segmentation'"):
        coco_evaluate(path, [one(gt)], "segm")
    with pytest.raises(ValueError, match="JSON list of dicts"):
        coco_evaluate(path, {"annotations": []}, "bbox")
    with pytest.raises(ValueError, match="iou_type"):
        coco_evaluate(path, [], "densepose")
    with pytest.raises(ValueError, match="no annotation has 'keypoints'"):
        coco_evaluate(path, [], "keypoints")
    with pytest.raises(ValueError, match="max_dets"):
        coco_evaluate(path, [], "bbox", max_dets=(100, 10, 1))


def test_mixed_boxes_in_segm_results(val):
    path, gt = val
    image = gt["images"][0]
    mask = np.zeros((image["height"], image["width"]), np.uint8, order="F")
    mask[5:20, 5:20] = 1
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode()
    with_box, without = one(gt, segmentation=rle), one(gt, segmentation=rle)
    del without["bbox"]
    with pytest.raises(ValueError, match="some results have a 'bbox'"):
        coco_evaluate(path, [with_box, without], "segm")


def test_bad_files(tmp_path, val):
    path, gt = val
    with pytest.raises(FileNotFoundError, match="nope.json"):
        coco_evaluate(tmp_path / "nope.json", [], "bbox")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: not a valid JSON"):
        coco_evaluate(path, broken, "bbox")
    no_area = json.loads(json.dumps(gt))
    del no_area["annotations"][3]["area"]
    with pytest.raises(ValueError, match=r"annotations\[3\]: missing 'area'"):
        coco_evaluate(no_area, [], "bbox")
    test_set = {k: v for k, v in gt.items() if k != "annotations"}
    with pytest.raises(ValueError, match="has no 'annotations'"):
        coco_evaluate(test_set, [], "bbox")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda im: im.pop("id"), r"images\[4\]: an image needs an 'id'"),
        (lambda im: im.update(height=0), r"images\[4\] \(id .*\): 'height' must be a positive"),
        (lambda im: im.update(width=640.0), r"images\[4\] \(id .*\): 'width' must be a positive"),
        (lambda im: im.pop("width"), r"'width' must be a positive integer"),
        (
            lambda im: im.update(id=[1]),
            r"images\[4\]: image id must be a number or a string, got \[1\]",
        ),
    ],
)
def test_bad_ground_truth_images(val, change, message):
    """The images are checked at once; a fault is then found one by one and named."""
    gt = json.loads(json.dumps(val[1]))
    change(gt["images"][4])
    with pytest.raises(ValueError, match=message):
        coco_evaluate(gt, [], "bbox")
    twice = json.loads(json.dumps(val[1]))
    twice["images"][4]["id"] = twice["images"][1]["id"]
    with pytest.raises(ValueError, match=r"images\[4\]: image id .* appears twice"):
        coco_evaluate(twice, [], "bbox")
    bad_category = json.loads(json.dumps(val[1]))
    bad_category["categories"][2]["id"] = {"id": 3}
    with pytest.raises(ValueError, match=r"categories\[2\]: category id must be a number"):
        coco_evaluate(bad_category, [], "bbox")


def _compressed(segmentation: dict) -> dict:
    rle = mask_util.frPyObjects(segmentation, *segmentation["size"])
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda ann: ann.pop("segmentation"), r"annotations\[2\] has no 'segmentation'"),
        (lambda ann: ann["segmentation"][0].__setitem__(1, "5"), "polygons must be lists of x, y"),
        (lambda ann: ann["segmentation"][0].__setitem__(1, float("nan")), "finite"),
        (lambda ann: ann["segmentation"][0].pop(), "polygons must be lists of x, y"),
        (lambda ann: ann.update(segmentation="mask"), "must be polygons .* or RLE"),
        (lambda ann: ann.update(iscrowd="yes"), r"annotations\[2\]: 'iscrowd' must be 0 or 1"),
    ],
)
@pytest.mark.parametrize("backend", ["hotcoco", "pycocotools"])
def test_bad_ground_truth_segmentations(val, change, message, backend):
    """Checked at once, then one by one to name the annotation: never an engine's error."""
    gt = json.loads(json.dumps(val[1]))
    change(gt["annotations"][2])
    with pytest.raises(ValueError, match=message):
        coco_evaluate(gt, [], "segm", backend=backend)


@pytest.mark.parametrize(
    "counts, message",
    [
        (lambda c: [float(v) for v in c], "non-negative integers"),
        (lambda c: [-c[0], *c[1:]], "non-negative integers"),
        (lambda c: c[:-1], "RLE counts sum to"),
        (lambda c: [*c, 10**12], "sum to more than height.width"),
        (lambda c: [*c, 10**30], "non-negative integers"),  # beyond int64
    ],
)
@pytest.mark.parametrize("backend", ["hotcoco", "pycocotools"])
def test_bad_ground_truth_crowd_rles(val, counts, message, backend):
    gt = json.loads(json.dumps(val[1]))
    crowd = next(i for i, ann in enumerate(gt["annotations"]) if ann["iscrowd"])
    segmentation = gt["annotations"][crowd]["segmentation"]
    fine = coco_evaluate(gt | {"annotations": gt["annotations"][:]}, [], "segm", backend=backend)
    assert fine["AP"] == 0.0  # uncompressed crowd RLE as given: accepted
    segmentation["counts"] = counts(segmentation["counts"])
    with pytest.raises(ValueError, match=rf"annotations\[{crowd}\]: 'segmentation': .*{message}"):
        coco_evaluate(gt, [], "segm", backend=backend)
    gt = json.loads(json.dumps(val[1]))
    rle = _compressed(gt["annotations"][crowd]["segmentation"])
    gt["annotations"][crowd]["segmentation"] = rle | {"counts": rle["counts"][:-1] + "~"}
    with pytest.raises(ValueError, match=rf"annotations\[{crowd}\]: 'segmentation' is a malformed"):
        coco_evaluate(gt, [], "segm", backend=backend)

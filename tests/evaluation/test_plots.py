"""Per-category tables and precision-recall plots: `masktron eval --per-class --plots DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import load_gt, noisy_detections
from PIL import Image

from masktron.cli.main import main
from masktron.evaluation import coco_evaluate
from masktron.evaluation.plots import per_category_figures, pr_curves, save_pr_plots

TINY = {
    "images": [{"id": 1, "height": 100, "width": 100}],
    "categories": [{"id": 1, "name": "thing"}, {"id": 2, "name": "absent"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600}
        | {"iscrowd": 0}
    ],
}


def test_curves_and_table_by_hand(tmp_path):
    # a false positive ranked above the exact box: precision 1/2 at every recall
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.8},
    ]
    kept: dict = {}
    coco_evaluate(TINY, dets, "bbox", arrays=kept)
    arrays = kept["bbox"]
    curves = pr_curves(arrays)
    for curve in curves.values():
        assert curve.shape == (101,) and np.allclose(curve, 0.5)
    assert np.isnan(pr_curves(arrays, 1)["IoU 0.50"]).all()  # "absent" has no ground truth
    rows = per_category_figures(arrays, {1: "thing", 2: "absent"}, {1: 1})
    assert rows[0][:4] == ["thing", 50.0, 50.0, 50.0] and rows[0][-2:] == [100.0, 1]
    assert rows[1][0] == "absent" and np.isnan(rows[1][1]) and rows[1][-1] == 0
    overall, grid = save_pr_plots(arrays, {1: "thing", 2: "absent"}, str(tmp_path), "bbox")
    image = np.asarray(Image.open(overall))
    assert image.shape == (520, 640, 3)
    # the chart spans x 142..626, y 49..414: precision 0.5 at recall 0.5 is pixel (384, 231.5),
    # drawn in the colour of the last curve (IoU 0.50:0.95, red)
    assert (image[231:233, 384] == (214, 39, 40)).all(axis=1).any()
    assert np.asarray(Image.open(grid)).shape == (150, 180, 3)  # one chart: "thing"


def test_cli_per_class_and_plots(coco_sample, tmp_path, capsys):
    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=11)
    results = tmp_path / "dets.json"
    results.write_text(json.dumps(dets))
    plots = tmp_path / "plots"
    args = ["eval", "--gt", path, "--results", str(results), "--per-class", "--plots", str(plots)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    expected = coco_evaluate(path, dets, "segm")
    assert "Per-category segm figures (worst first):" in printed
    detail = printed.split("Per-category segm figures (worst first):")[1].splitlines()
    row = next(line for line in detail if line.startswith("| person "))
    assert f"{expected['AP-person']:.3f}" in row
    people = sum(a["category_id"] == 1 and not a["iscrowd"] for a in gt["annotations"])
    assert row.rstrip(" |").endswith(f" {people}")
    for task in ("bbox", "segm"):
        for name in (f"{task}_pr.png", f"{task}_pr_per_class.png"):
            image = np.asarray(Image.open(plots / name))
            assert image.std() > 10  # something is drawn
    found = len({a["category_id"] for a in gt["annotations"]})  # one chart per category
    columns = min(8, found)
    rows = -(-found // columns)
    assert Image.open(plots / "segm_pr_per_class.png").size == (columns * 180, rows * 150)


@pytest.mark.parametrize("iou_type", ["keypoints"])
def test_cli_rejects_keypoints_without_them(coco_sample, tmp_path, iou_type):
    path, gt = load_gt(coco_sample, "val")
    results = tmp_path / "dets.json"
    results.write_text(json.dumps(noisy_detections(gt, seed=12)[:5]))
    assert main(["eval", "--gt", path, "--results", str(results), "--iou-type", iou_type]) == 1

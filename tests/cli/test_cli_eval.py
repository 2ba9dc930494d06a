"""`masktron eval`: results files against COCO (instances and panoptic) ground truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from masktron.cli.main import main
from masktron.evaluation import coco_evaluate

SHARED = Path(
    os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")
)
COCO_GT = SHARED / "data" / "coco_sample" / "annotations" / "instances_val2017.json"
PANOPTIC = SHARED / "data" / "panoptic_sample" / "sample_data"


@pytest.fixture
def results(tmp_path) -> Path:
    if not COCO_GT.is_file():
        pytest.skip(f"COCO sample not found at {COCO_GT} (set MASKTRON_SHARED)")
    gt = json.loads(COCO_GT.read_text())
    rng = np.random.default_rng(0)
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": (np.asarray(a["bbox"]) * rng.uniform(0.9, 1.1, 4)).tolist(),
            "score": float(rng.random()),
        }
        for a in gt["annotations"]
        if not a["iscrowd"]
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    return path


def test_results_file(results, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert (
        main(["eval", "--gt", str(COCO_GT), "--results", str(results), "--output", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    expected = coco_evaluate(COCO_GT, results, "bbox")
    assert "Evaluation results for bbox:" in printed and "segm" not in printed
    assert "|   AP   |  AP50  |  AP75  |  APs   |  APm   |  APl   |" in printed
    assert f"| {expected['AP']:.3f} | {expected['AP50']:.3f} |" in printed
    assert f"| person        | {expected['AP-person']:.3f} |" in printed
    saved = json.loads(out.read_text())["bbox"]
    assert saved["AP"] == pytest.approx(expected["AP"]) and saved["AP-bicycle"] is None  # NaN


def test_bad_inputs_exit_1_with_a_message(results, tmp_path, capsys):
    assert (
        main(["eval", "--gt", str(COCO_GT), "--results", str(results), "--iou-type", "segm"]) == 1
    )
    assert "missing 'segmentation'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])
    )
    assert main(["eval", "--gt", str(COCO_GT), "--results", str(bad)]) == 1
    assert "not in the ground truth: image_id [1]" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path / "none.json"), "--results", str(bad)]) == 1
    assert "none.json: no such file" in capsys.readouterr().err


def test_bad_arguments_exit_2(results):
    for argv in (["eval"], ["eval", "--gt", str(COCO_GT)], ["eval", "--iou-type", "mask"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


def test_panoptic_files(capsys):
    if not PANOPTIC.is_dir():
        pytest.skip(f"panoptic sample not found at {PANOPTIC}")
    gt = str(PANOPTIC / "panoptic_examples.json")
    assert main(["eval", "--gt", gt, "--results", gt]) == 0
    printed = capsys.readouterr().out
    assert "Panoptic Evaluation Results:" in printed
    assert "|  All   | 100.000 | 100.000 | 100.000 |" in printed


@pytest.mark.slow
def test_model_on_a_registered_dataset(tmp_path, capsys):
    """--config mode: a randomly initialised Mask R-CNN on the 6 sample images, end to end."""
    if not COCO_GT.is_file():
        pytest.skip(f"COCO sample not found at {COCO_GT} (set MASKTRON_SHARED)")
    from masktron.data import register_coco_instances

    name = f"cli_eval_{tmp_path.name}"
    register_coco_instances(name, {}, str(COCO_GT), str(COCO_GT.parents[1] / "images" / "val2017"))
    argv = ["eval", "--config", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"]
    argv += ["--weights", "", "--dataset", name, "--device", "cpu", "--output-dir", str(tmp_path)]
    argv += ["--output", str(tmp_path / "m.json"), "INPUT.MIN_SIZE_TEST", "160"]
    assert main(argv + ["INPUT.MAX_SIZE_TEST", "256"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Evaluation results for bbox:") == 1 and "for segm:" in printed
    written = json.loads((tmp_path / name / "coco_instances_results.json").read_text())
    figures = json.loads((tmp_path / "m.json").read_text())
    no_boxes = [{k: v for k, v in d.items() if k != "bbox"} for d in written]
    for task, dets in (("bbox", written), ("segm", no_boxes)):
        expected = coco_evaluate(COCO_GT, dets, task)
        assert figures[task]["AP"] == pytest.approx(expected["AP"])
        assert figures[task]["AP-person"] == pytest.approx(expected["AP-person"])

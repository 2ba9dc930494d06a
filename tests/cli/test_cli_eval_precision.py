"""`masktron eval --config` runs the model in `MODEL.PRECISION`, as `masktron predict` does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rcnn_tiny import tiny_cfg

from masktron.cli.main import main

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


@pytest.fixture(scope="module")
def tiny_run(shared_dir, tmp_path_factory):
    """A tiny Mask R-CNN (config file + seeded weights) and a 1-image dataset of a COCO photo."""
    from masktron.data import register_coco_instances
    from masktron.modeling import build_model

    root = tmp_path_factory.mktemp("eval_precision")
    sample = shared_dir / "data" / "coco_sample"
    gt = json.loads((sample / "annotations" / "instances_val2017.json").read_text())
    images = gt["images"][:1]
    keep = {image["id"] for image in images}
    gt |= {"images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    (root / "gt.json").write_text(json.dumps(gt))
    name = f"eval_precision_{root.name}"
    register_coco_instances(name, {}, str(root / "gt.json"), str(sample / "images" / "val2017"))
    cfg = tiny_cfg(CONFIG)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 128, 200
    cfg.DATASETS.TEST = (name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    (root / "config.yaml").write_text(cfg.dump())
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, root / "model.pth")
    return root, name


def _eval(root, name, out: str, *opts: str) -> int:
    argv = ["eval", "--config", str(root / "config.yaml"), "--weights", str(root / "model.pth")]
    return main(
        [*argv, "--dataset", name, "--device", "cpu", "--output-dir", str(root / out), *opts]
    )


def _results(root, out: str, name: str) -> list[dict]:
    return json.loads((root / out / name / "coco_instances_results.json").read_text())


def test_eval_runs_the_model_in_bf16_when_the_config_asks(tiny_run, capsys):
    from masktron.config import get_cfg
    from masktron.data import DatasetCatalog, read_image
    from masktron.engine import DefaultPredictor

    root, name = tiny_run
    assert _eval(root, name, "fp32") == 0
    assert _eval(root, name, "bf16", "MODEL.PRECISION", "bf16") == 0
    fp32, bf16 = _results(root, "fp32", name), _results(root, "bf16", name)
    assert fp32 and bf16
    boxes = [r["bbox"] for r in fp32]
    assert boxes != [r["bbox"] for r in bf16]  # bf16 rounds differently
    # ... exactly as DefaultPredictor's bf16 mode does on the same image
    cfg = get_cfg()
    cfg.merge_from_file(str(root / "config.yaml"))
    cfg.MODEL.WEIGHTS, cfg.MODEL.PRECISION = str(root / "model.pth"), "bf16"
    record = DatasetCatalog.get(name)[0]
    instances = DefaultPredictor(cfg)(read_image(record["file_name"], format="BGR"))["instances"]
    mine = [r for r in bf16 if r["image_id"] == record["image_id"]]
    xyxy = np.array([r["bbox"] for r in mine]) + [0, 0, 0, 0]
    xyxy[:, 2:] += xyxy[:, :2]  # XYWH -> XYXY
    np.testing.assert_allclose(xyxy, instances.pred_boxes.tensor.numpy(), atol=1e-3)
    np.testing.assert_allclose([r["score"] for r in mine], instances.scores.numpy(), atol=1e-6)


def test_eval_refuses_fp16_on_a_cpu_as_predict_does(tiny_run, capsys):
    root, name = tiny_run
    assert _eval(root, name, "fp16", "MODEL.PRECISION", "fp16") == 1
    assert 'MODEL.PRECISION "fp16" needs a CUDA device' in capsys.readouterr().err

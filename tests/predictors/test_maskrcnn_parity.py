"""Parity with Detectron2: fixture weights written into a real model-zoo .pkl, loaded through
cfg.MODEL.WEIGHTS and DefaultPredictor, must reproduce Detectron2's detections and masks."""

import numpy as np
import pytest
from parity_utils import compare_detections, read_rgb, zoo_predictor

NAME = "mask_rcnn_R_50_FPN_3x"


@pytest.fixture(scope="module")
def predictor(zoo_pkl):
    return zoo_predictor(zoo_pkl(NAME), f"COCO-InstanceSegmentation/{NAME}.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["astronaut", "coffee"])
def test_mask_rcnn_matches_detectron2(predictor, shared_dir, stem):
    expected = np.load(shared_dir / "fixtures" / f"{NAME}.s0.expected.npz")
    rgb = read_rgb(shared_dir, stem)
    inst = predictor(rgb[:, :, ::-1])["instances"].to("cpu")
    assert inst.image_size == rgb.shape[:2]
    result = compare_detections(
        expected,
        stem,
        inst.pred_boxes.tensor.numpy(),
        inst.scores.numpy(),
        inst.pred_classes.numpy(),
        inst.pred_masks.numpy(),
    )
    assert result["agree"] >= 0.90, result["agree"]
    assert result["mask_iou"] >= 0.97, result["mask_iou"]

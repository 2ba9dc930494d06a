"""Parity with Detectron2: fixture weights written into a real model-zoo .pkl, loaded through
cfg.MODEL.WEIGHTS and DefaultPredictor, must reproduce Detectron2's detections and masks."""

import numpy as np
import pytest
from parity_utils import compare_detections
from PIL import Image

from masktron import model_zoo
from masktron.config import get_cfg
from masktron.engine import DefaultPredictor

NAME = "mask_rcnn_R_50_FPN_3x"


@pytest.fixture(scope="module")
def predictor(mask_rcnn_zoo_pkl):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(f"COCO-InstanceSegmentation/{NAME}.yaml"))
    cfg.MODEL.WEIGHTS = str(mask_rcnn_zoo_pkl)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    return DefaultPredictor(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["astronaut", "coffee"])
def test_mask_rcnn_matches_detectron2(predictor, shared_dir, stem):
    expected = np.load(shared_dir / "fixtures" / f"{NAME}.s0.expected.npz")
    rgb = np.asarray(Image.open(shared_dir / "data" / "images" / f"{stem}.png").convert("RGB"))
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
    assert result["agree"] >= 0.90, result
    assert result["mask_iou"] >= 0.97, result

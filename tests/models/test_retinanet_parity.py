"""Parity with Detectron2: RetinaNet fixture weights written into a real model-zoo .pkl, loaded
through cfg.MODEL.WEIGHTS and DefaultPredictor, must reproduce Detectron2's detections."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from masktron import model_zoo
from masktron.engine import DefaultPredictor

NAME = "retinanet_R_50_FPN_3x"
STEMS = ["astronaut", "coffee"]


def zoo_predictor(shared_dir: Path, weights_rule, tmp_dir: Path, name: str, config: str):
    """A DefaultPredictor for `config` whose weights come from a model-zoo pickle holding the
    fixture weights of `name`, written as Detectron2 writes its zoo files."""
    calib = shared_dir / "fixtures" / f"{name}.s0.calib.npz"
    weights = weights_rule.calibrated_weights(None, str(calib))
    path = tmp_dir / "model_final.pkl"
    with open(path, "wb") as f:
        zoo = {"model": weights, "__author__": "Detectron2 Model Zoo", "matching_heuristics": False}
        pickle.dump(zoo, f)
    cfg = model_zoo.get_config(config)
    cfg.MODEL.WEIGHTS = str(path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.05
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    return DefaultPredictor(cfg)


def read_rgb(shared_dir: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(shared_dir / "data" / "images" / f"{stem}.png").convert("RGB"))


def detection_agreement(expected, stem: str, instances) -> tuple[float, list[tuple[int, int]]]:
    """The fixtures' rule: one-to-one (Hungarian) matching on box IoU within a class; a pair
    agrees at IoU >= 0.98 and |score difference| <= 0.005. Returns the agreeing fraction of the
    larger list and the agreeing (reference, ours) index pairs."""
    ref_boxes = torch.as_tensor(expected[f"{stem}/boxes"])
    ref_scores = expected[f"{stem}/scores"]
    ref_classes = expected[f"{stem}/classes"]
    boxes = instances.pred_boxes.tensor
    scores = instances.scores.numpy()
    same_class = ref_classes[:, None] == instances.pred_classes.numpy()[None]
    iou = box_iou(ref_boxes, boxes).numpy() * same_class
    rows, cols = linear_sum_assignment(iou, maximize=True)
    pairs = [
        (int(r), int(c))
        for r, c in zip(rows, cols)
        if iou[r, c] >= 0.98 and abs(ref_scores[r] - scores[c]) <= 0.005
    ]
    return len(pairs) / max(len(ref_boxes), len(boxes), 1), pairs


@pytest.fixture(scope="module")
def predictor(shared_dir, fixture_weights_module, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    return zoo_predictor(
        shared_dir, fixture_weights_module, tmp, NAME, f"COCO-Detection/{NAME}.yaml"
    )


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_retinanet_matches_detectron2(predictor, shared_dir, stem):
    expected = np.load(shared_dir / "fixtures" / f"{NAME}.s0.expected.npz")
    rgb = read_rgb(shared_dir, stem)
    instances = predictor(rgb[:, :, ::-1])["instances"].to("cpu")
    assert instances.image_size == rgb.shape[:2]
    assert len(instances) == len(expected[f"{stem}/scores"])
    agree, _ = detection_agreement(expected, stem, instances)
    assert agree >= 0.90, agree

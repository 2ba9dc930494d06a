"""Parity with Detectron2: RetinaNet fixture weights written into a real model-zoo .pkl, loaded
through cfg.MODEL.WEIGHTS and DefaultPredictor, must reproduce Detectron2's detections."""

from __future__ import annotations

import numpy as np
import pytest
from parity_utils import compare_detections, read_rgb, zoo_predictor

NAME = "retinanet_R_50_FPN_3x"
STEMS = ["astronaut", "coffee"]


def detection_agreement(expected, stem: str, instances) -> tuple[float, list[tuple[int, int]]]:
    """The fixtures' detection rule on `Instances`: agreeing fraction and (ref, ours) pairs."""
    result = compare_detections(
        expected,
        stem,
        instances.pred_boxes.tensor.numpy(),
        instances.scores.numpy(),
        instances.pred_classes.numpy(),
    )
    return result["agree"], result["pairs"]


@pytest.fixture(scope="module")
def predictor(zoo_pkl):
    return zoo_predictor(zoo_pkl(NAME), f"COCO-Detection/{NAME}.yaml")


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

"""Parity helpers: fixture-weight predictors and the comparison rules of
../shared/fixtures/README.md. The device is the CPU unless MASKTRON_TEST_DEVICE says otherwise
(e.g. `MASKTRON_TEST_DEVICE=cuda` to run the parity tests on a GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

TEST_DEVICE = os.environ.get("MASKTRON_TEST_DEVICE", "cpu")


def zoo_predictor(pkl: Path, config: str):
    """A DefaultPredictor for zoo `config` with weights from the model-zoo pickle `pkl`,
    scores kept from 0.05 (the references' setting), on TEST_DEVICE."""
    from masktron import model_zoo
    from masktron.engine import DefaultPredictor

    cfg = model_zoo.get_config(config)
    cfg.MODEL.WEIGHTS = str(pkl)
    cfg.MODEL.DEVICE = TEST_DEVICE
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.05
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    # The references were computed in full float32; on GPUs PyTorch lets cuDNN convolutions
    # use TF32, whose 10-bit mantissa the random networks amplify into different detections.
    cfg.FLOAT32_PRECISION = "highest"
    return DefaultPredictor(cfg)


def read_rgb(shared_dir: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(shared_dir / "data" / "images" / f"{stem}.png").convert("RGB"))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) XYXY -> (N, M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def unpack_masks(expected, key: str) -> np.ndarray:
    shape = expected[f"{key}/masks_shape"]
    return np.unpackbits(expected[f"{key}/masks_packed"], axis=-1)[..., : shape[2]].astype(bool)


def compare_detections(expected, key: str, boxes, scores, classes, masks=None) -> dict:
    """Hungarian matching on box IoU within a class; a pair agrees at IoU >= 0.98 and
    |d score| <= 0.005. Returns the agreeing fraction (of the larger list) and the mean mask
    IoU over agreeing pairs."""
    eb, es, ec = expected[f"{key}/boxes"], expected[f"{key}/scores"], expected[f"{key}/classes"]
    iou = box_iou(eb, boxes) * (ec[:, None] == classes[None])
    rows, cols = linear_sum_assignment(-iou)
    pairs = [
        (i, j) for i, j in zip(rows, cols) if iou[i, j] >= 0.98 and abs(es[i] - scores[j]) <= 0.005
    ]
    result = {"agree": len(pairs) / max(len(eb), len(boxes), 1), "pairs": pairs}
    if masks is not None:
        em = unpack_masks(expected, key)
        ious = [(em[i] & masks[j]).sum() / max((em[i] | masks[j]).sum(), 1) for i, j in pairs]
        result["mask_iou"] = float(np.mean(ious)) if ious else 0.0
    return result

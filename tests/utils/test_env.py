"""FLOAT32_PRECISION: the helper, and DefaultPredictor applying it (and checking its input)."""

import numpy as np
import pytest
import torch

from masktron import model_zoo
from masktron.engine import DefaultPredictor
from masktron.utils.env import set_float32_precision

BUNDLED = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"


@pytest.fixture
def restore_precision():
    matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = conv


@pytest.mark.parametrize("precision, tf32_convs", [("highest", False), ("high", True)])
def test_precision_sets_matmuls_and_convolutions(precision, tf32_convs, restore_precision):
    set_float32_precision(precision)
    assert torch.get_float32_matmul_precision() == precision
    assert torch.backends.cudnn.allow_tf32 is tf32_convs


def test_empty_precision_leaves_pytorch_settings_alone(restore_precision):
    torch.set_float32_matmul_precision("medium")
    torch.backends.cudnn.allow_tf32 = True
    set_float32_precision("")
    assert torch.get_float32_matmul_precision() == "medium"
    assert torch.backends.cudnn.allow_tf32 is True


def test_unknown_precision_names_the_key(restore_precision):
    with pytest.raises(ValueError, match="FLOAT32_PRECISION must be .* got 'fp16'"):
        set_float32_precision("fp16")


def test_default_predictor_applies_the_config_and_checks_images(restore_precision):
    torch.backends.cudnn.allow_tf32 = True
    cfg = model_zoo.get_config(BUNDLED)
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.FLOAT32_PRECISION = "highest"
    predictor = DefaultPredictor(cfg)
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 BGR image, got shape \(8, 8\)"):
        predictor(np.zeros((8, 8), np.uint8))
    outputs = predictor(np.zeros((40, 56, 3), np.uint8))
    assert outputs["instances"].image_size == (40, 56)

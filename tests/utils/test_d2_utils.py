"""Detectron2's small utilities: parameter counts, environment info, DIoU/CIoU losses and
instance-centred crops."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from masktron.data.detection_utils import gen_crop_transform_with_instance
from masktron.layers import ciou_loss, diou_loss
from masktron.structures import BoxMode
from masktron.utils.analysis import parameter_count, parameter_count_table
from masktron.utils.collect_env import collect_env_info


def test_parameter_count_per_prefix():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Linear(4, 2, bias=False)))
    counts = parameter_count(model)
    assert counts[""] == 3 * 4 + 4 + 4 * 2
    assert counts["0"] == 16 and counts["0.weight"] == 12 and counts["1.0"] == 8
    assert "model" in parameter_count_table(model)


def test_collect_env_info_names_the_versions():
    info = collect_env_info()
    assert "PyTorch" in info and torch.__version__ in info and "numpy" in info


def test_diou_and_ciou_losses():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert diou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0]])  # shifted by 1: IoU 1/3
    # centres 1 apart, enclosing box 3 x 2 -> diagonal^2 = 13
    assert diou_loss(a, b).item() == pytest.approx(1 - 1 / 3 + 1 / 13, rel=1e-5)
    tall = torch.tensor([[0.0, 0.0, 2.0, 4.0]])  # aspect term only where shapes differ
    v = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(2 / 2)) ** 2
    iou = 0.5
    expected = 1 - iou + 1 / 20 + v / (1 - iou + v) * v
    assert ciou_loss(a, tall).item() == pytest.approx(expected, rel=1e-4)
    empty = torch.zeros(0, 4, requires_grad=True)
    assert diou_loss(empty, empty, reduction="mean").item() == 0.0


def test_crop_around_an_instance():
    np.random.seed(0)
    instance = {"bbox": [40, 10, 20, 20], "bbox_mode": BoxMode.XYWH_ABS}  # centre (50, 20)
    for _ in range(20):
        crop = gen_crop_transform_with_instance((16, 32), (60, 100), instance)
        assert (crop.w, crop.h) == (32, 16)
        assert crop.x0 <= 50 <= crop.x0 + 32 and crop.y0 <= 20 <= crop.y0 + 16
        assert crop.x0 + 32 <= 100 and crop.y0 + 16 <= 60
    with pytest.raises(ValueError, match="larger than the image"):
        gen_crop_transform_with_instance((80, 32), (60, 100), instance)


def test_impossible_crop_is_an_assertion_error_too():
    instance = {"bbox": [10, 10, 100, 100], "bbox_mode": BoxMode.XYXY_ABS}
    with pytest.raises(AssertionError):  # what Detectron2 code catches
        gen_crop_transform_with_instance((10, 10), (15, 15), instance)


def test_optimizer_groups_expand_then_merge():
    from masktron.solver.build import _expand_param_groups, reduce_param_groups

    groups = [{"params": ["a", "b"], "lr": 1.0}, {"params": ["b"], "lr": 2.0, "wd": 0.0}]
    assert _expand_param_groups(groups) == [
        {"params": ["a"], "lr": 1.0},
        {"params": ["b"], "lr": 2.0, "wd": 0.0},
    ]
    assert reduce_param_groups(groups + [{"params": ["c"], "lr": 1.0}]) == [
        {"lr": 1.0, "params": ["a", "c"]},
        {"lr": 2.0, "wd": 0.0, "params": ["b"]},
    ]


def test_depthwise_separable_conv_and_aspp():
    from torch.nn import functional as F

    from masktron.layers import ASPP, DepthwiseSeparableConv2d

    conv = DepthwiseSeparableConv2d(4, 6, norm1="BN", activation1=F.relu, norm2="BN")
    assert conv.depthwise.groups == 4 and conv.depthwise.bias is None
    assert conv(torch.rand(2, 4, 9, 9)).shape == (2, 6, 9, 9)
    aspp = ASPP(4, 8, [1, 2, 3], norm="BN", activation=F.relu, dropout=0.1)
    assert len(aspp.convs) == 5
    assert aspp(torch.rand(2, 4, 12, 10)).shape == (2, 8, 12, 10)
    pooled = ASPP(4, 8, [1, 2, 3], norm="", activation=F.relu, pool_kernel_size=(4, 5))
    assert pooled(torch.rand(1, 4, 8, 10)).shape == (1, 8, 8, 10)
    separable = ASPP(4, 8, [1, 2, 3], norm="", activation=F.relu, use_depthwise_separable_conv=True)
    assert isinstance(separable.convs[1], DepthwiseSeparableConv2d)
    with pytest.raises(ValueError, match="divisible"):
        pooled(torch.rand(1, 4, 9, 10))


def test_flop_count_operators_counts_multiply_adds():
    from masktron.utils.analysis import flop_count_operators

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    counts = flop_count_operators(model, torch.rand(1, 3, 16, 16))
    assert counts["conv"] == pytest.approx(8 * 3 * 9 * 16 * 16 / 1e9)  # one per multiply-add
    assert counts["linear"] == pytest.approx(8 * 16 * 16 * 10 / 1e9)
    assert model.training  # mode restored

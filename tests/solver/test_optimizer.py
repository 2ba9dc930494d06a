"""Detectron2's parameter-group rules, optimizers and gradient clipping."""

import pytest
import torch
from torch import nn

from masktron.config import get_cfg
from masktron.layers.frozen_bn import FrozenBatchNorm2d
from masktron.solver import build_gradient_clipper, build_optimizer, get_default_optimizer_params


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.frozen = FrozenBatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.fc_tied = nn.Linear(4, 2)
        self.fc_tied.weight = self.fc.weight  # shared: must be optimised once
        self.fixed = nn.Linear(2, 2)
        self.fixed.requires_grad_(False)


def hyper(optimizer, param):
    (group,) = [g for g in optimizer.param_groups if any(p is param for p in g["params"])]
    return group["lr"], group["weight_decay"]


def cfg_with(**solver):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def test_norm_and_bias_rules():
    net = Net()
    cfg = cfg_with(WEIGHT_DECAY_NORM=0.0, BIAS_LR_FACTOR=2.0, WEIGHT_DECAY_BIAS=5e-5)
    opt = build_optimizer(cfg, net)
    assert isinstance(opt, torch.optim.SGD)
    assert hyper(opt, net.conv.weight) == (0.1, 1e-4)
    assert hyper(opt, net.fc.weight) == (0.1, 1e-4)
    assert hyper(opt, net.bn.weight) == (0.1, 0.0)
    assert hyper(opt, net.gn.weight) == (0.1, 0.0)
    # The bias rule overrides the norm rule for a norm layer's bias.
    for bias in (net.conv.bias, net.fc.bias, net.bn.bias, net.gn.bias, net.fc_tied.bias):
        assert hyper(opt, bias) == (0.2, 5e-5)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == 9  # tied once, frozen ones excluded
    assert len(opt.param_groups) == 3  # equal hyper-parameters merged


def test_defaults_leave_biases_alone_and_exempt_norms_from_decay():
    net = Net()
    opt = build_optimizer(cfg_with(), net)  # WEIGHT_DECAY_NORM 0, BIAS_LR_FACTOR 1
    assert hyper(opt, net.conv.bias) == (0.1, 1e-4)
    assert hyper(opt, net.bn.bias) == (0.1, 0.0)
    assert opt.defaults["momentum"] == 0.9 and not opt.defaults["nesterov"]


def test_overrides_by_parameter_name():
    net = Net()
    groups = get_default_optimizer_params(
        net, base_lr=1.0, weight_decay=0.5, overrides={"weight": {"weight_decay": 0.0}}
    )
    opt = torch.optim.SGD(groups, lr=1.0)
    assert hyper(opt, net.conv.weight) == (1.0, 0.0) and hyper(opt, net.conv.bias) == (1.0, 0.5)
    with pytest.raises(ValueError, match="conflict"):
        get_default_optimizer_params(net, 1.0, weight_decay_bias=0.0, overrides={"bias": {}})


def test_optimizer_choice():
    net = Net()
    opt = build_optimizer(cfg_with(OPTIMIZER="AdamW", WEIGHT_DECAY_NORM=0.0), net)
    assert isinstance(opt, torch.optim.AdamW)
    assert hyper(opt, net.conv.weight) == (0.1, 1e-4) and hyper(opt, net.bn.weight) == (0.1, 0.0)
    opt = build_optimizer(cfg_with(NESTEROV=True, MOMENTUM=0.8), net)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.8
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(cfg_with(OPTIMIZER="Adagrad"), net)
    with pytest.raises(ValueError, match="trainable"):
        build_optimizer(cfg_with(), nn.Linear(2, 2).requires_grad_(False))


def clip_cfg(kind, value=1.0):
    cfg = get_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = kind
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = value
    return cfg


def params_with_grads():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, 0.0])  # norm 3
    b.grad = torch.tensor([0.0, -0.5])  # norm 0.5
    return a, b


def test_gradient_clipping_semantics():
    assert build_gradient_clipper(get_cfg()) is None
    a, b = params_with_grads()
    build_gradient_clipper(clip_cfg("value", 0.4))([a, b])
    assert a.grad.tolist() == pytest.approx([0.4, 0.0])
    assert b.grad.tolist() == pytest.approx([0.0, -0.4])
    # "norm" clips each parameter on its own (Detectron2): b is under the limit, unchanged.
    a, b = params_with_grads()
    build_gradient_clipper(clip_cfg("norm", 1.0))([a, b])
    assert a.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
    assert b.grad.tolist() == pytest.approx([0.0, -0.5])
    # "full_model" scales all gradients by one factor from their joint norm.
    a, b = params_with_grads()
    build_gradient_clipper(clip_cfg("full_model", 1.0))([a, b])
    total = (3.0**2 + 0.5**2) ** 0.5
    assert a.grad.tolist() == pytest.approx([3.0 / total, 0.0], rel=1e-4)
    assert b.grad.tolist() == pytest.approx([0.0, -0.5 / total], rel=1e-4)
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_gradient_clipper(clip_cfg("bogus"))

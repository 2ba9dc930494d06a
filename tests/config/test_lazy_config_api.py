"""Detectron2's LazyConfig / LazyCall / instantiate: Python config files, YAML round trips,
overrides, and objects built from configs."""

import types

import pytest
import torch

from masktron import model_zoo
from masktron.config import LazyCall as L
from masktron.config import LazyConfig, instantiate
from masktron.layers import ShapeSpec
from masktron.utils.testing import reload_lazy_config

COMMON = """
optimizer = {"lr": 0.1, "momentum": 0.9}
name = "common"
"""

ROOT = """
import torch
from masktron.config import LazyCall as L

from .common.optim import optimizer, name

optimizer.lr = 0.5  # changes this file's copy only
layer = L(torch.nn.Linear)(in_features=4, out_features="${..dims.width}")
dims = {"width": 3}
width = 3
other = {"n": name, "w": "${dims.width}"}
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "optim.py").write_text(COMMON)
    (tmp_path / "root.py").write_text(ROOT)
    return tmp_path / "root.py"


def test_load_python_config(root):
    cfg = LazyConfig.load(str(root))
    assert set(cfg) == {"optimizer", "layer", "dims", "other"}  # dicts and LazyCalls only
    assert cfg.optimizer.lr == 0.5 and cfg.optimizer.momentum == 0.9
    # every load reads the files afresh
    assert LazyConfig.load(str(root.parent / "common" / "optim.py")).optimizer.lr == 0.1
    assert LazyConfig.load(str(root), keys="width") == 3


def test_instantiate_builds_objects(root):
    cfg = LazyConfig.load(str(root))
    assert instantiate(cfg.layer).out_features == 3  # interpolated
    cfg.dims.width = 5
    layer = instantiate(cfg.layer)
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 5
    nested = L(torch.nn.ModuleList)(modules=[L(torch.nn.ReLU)(), L(torch.nn.Tanh)()])
    assert isinstance(instantiate(nested)[1], torch.nn.Tanh)
    shape = instantiate(L(ShapeSpec)(channels=2))
    assert shape == ShapeSpec(channels=2)
    assert instantiate({"a": 1}) == {"a": 1} and instantiate(7) == 7
    with pytest.raises(TypeError, match="Linear"):
        instantiate(L(torch.nn.Linear)(bad=1))
    with pytest.raises(TypeError):
        L(3)


def test_save_load_round_trip_and_overrides(root, tmp_path):
    cfg = LazyConfig.load(str(root))
    path = tmp_path / "saved.yaml"
    LazyConfig.save(cfg, str(path))
    again = LazyConfig.load(str(path))
    assert again.layer._target_ == "torch.nn.Linear"
    assert again.other.w == 3  # interpolations survive
    assert isinstance(instantiate(again.layer), torch.nn.Linear)
    LazyConfig.apply_overrides(again, ["optimizer.lr=0.01", 'other.n="x"', "new.key=[1, 2]"])
    assert again.optimizer.lr == 0.01 and again.other.n == "x" and list(again.new.key) == [1, 2]
    with pytest.raises(KeyError, match="other.n"):
        LazyConfig.apply_overrides(again, ["other.n.deeper=1"])
    shape_cfg = L(types.SimpleNamespace)(s=ShapeSpec(channels=1, width=3))
    assert instantiate(reload_lazy_config(shape_cfg)).s == ShapeSpec(channels=1, width=3)


def test_lazy_zoo_entries_not_shipped_are_refused_clearly():
    # the new baselines ship (tests/model_zoo/test_new_baselines.py); other .py names do not
    with pytest.raises(RuntimeError, match="not in the model zoo; did you mean"):
        model_zoo.get_config("new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.yaml.py")
    with pytest.raises(RuntimeError, match="not in the model zoo"):
        model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py")

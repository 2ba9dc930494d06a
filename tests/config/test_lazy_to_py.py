"""`LazyConfig.to_py`: a config as Python assignments that, run, make what `instantiate` makes."""

from __future__ import annotations

import ast
import builtins
import itertools
import sys
import types

import pytest
from omegaconf import DictConfig, OmegaConf

import masktron
from masktron import model_zoo
from masktron.backbones.regnet import SimpleStem
from masktron.config import LazyCall as L
from masktron.config import LazyConfig, instantiate
from masktron.layers import ShapeSpec
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher


class _Tree(dict):
    """`cfg` for running the code: attributes set at any depth, read back as a dict."""

    def __getattr__(self, name: str) -> _Tree:
        return self.setdefault(name, _Tree())

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


def _run(code: str) -> dict:
    namespace = {"cfg": _Tree(), "masktron": masktron, "itertools": itertools, "types": types}
    exec(compile(code, "<to_py>", "exec"), namespace)
    return namespace["cfg"]


def _instantiate_leaves(cfg):
    """`instantiate` of every call or leaf under plain dicts (what the statements assign)."""
    if isinstance(cfg, DictConfig) and "_target_" not in cfg and OmegaConf.get_type(cfg) is dict:
        return {k: _instantiate_leaves(cfg[k]) for k in cfg}
    return instantiate(cfg)


def _config():
    cfg = OmegaConf.create(flags={"allow_objects": True})
    cfg.train = {"max_iter": 100, "amp": {"enabled": True}, "output_dir": "./out", "log": None}
    cfg.matcher = L(Matcher)(thresholds=[0.3, 0.7], labels=[0, -1, 1])
    cfg.box = L(Box2BoxTransform)(weights=(10.0, 10.0, 5.0, 5.0))
    cfg.heads = {
        "shape": ShapeSpec(channels=256, height=7, width=7),  # a dataclass node
        "spec": L(types.SimpleNamespace)(
            stem=SimpleStem, sizes={"a": [1, 2, {"d": 3}]}, ratio="${...ratio}"
        ),
    }
    cfg.ratio = 0.5  # read by an interpolation, resolved in the code
    cfg.counter = L(itertools.count)(start=3, step=2)
    return cfg


@pytest.mark.parametrize("with_black", [True, False])
def test_to_py_round_trip_makes_what_instantiate_makes(with_black, monkeypatch):
    if not with_black:  # Detectron2 formats with black; without it: one statement per line
        monkeypatch.setitem(sys.modules, "black", None)
    cfg = _config()
    code = LazyConfig.to_py(cfg)
    ast.parse(code)
    assert "cfg.train.max_iter = 100\n" in code and "cfg.ratio = 0.5\n" in code
    assert "masktron.models.matcher.Matcher(" in code
    if not with_black:
        assert len(code.splitlines()) == 10  # one per leaf or call

    ran, made = _run(code), _instantiate_leaves(cfg)
    assert ran["train"] == OmegaConf.to_container(cfg.train)
    for key in ("matcher", "box"):
        assert type(ran[key]) is type(made[key]) and vars(ran[key]) == vars(made[key])
    assert (
        ran["heads"]["shape"]
        == made["heads"]["shape"]
        == ShapeSpec(channels=256, height=7, width=7)
    )
    spec = vars(ran["heads"]["spec"])
    assert spec == {"stem": SimpleStem, "sizes": {"a": [1, 2, {"d": 3}]}, "ratio": 0.5}
    assert spec == vars(made["heads"]["spec"])
    assert next(ran["counter"]) == next(made["counter"]) == 3


def test_to_py_prefix_keys_and_refusals():
    code = LazyConfig.to_py(OmegaConf.create({"a-b": 1, "c": {}, "d": float("inf")}), "conf.")
    assert code.splitlines() == ['conf["a-b"] = 1', "conf.c = {}", 'conf.d = float("inf")']
    cfg = OmegaConf.create({"x": object()}, flags={"allow_objects": True})
    with pytest.raises(ValueError, match="cannot write a object"):
        LazyConfig.to_py(cfg)


def test_to_py_of_a_zoo_lazyconfig_names_its_classes():
    cfg = model_zoo.get_config("new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_200ep_LSJ.py")
    code = LazyConfig.to_py(cfg)
    tree = ast.parse(code)
    targets = {ast.unparse(node.targets[0]) for node in tree.body}  # type: ignore[attr-defined]
    assert {"cfg.model", "cfg.optimizer", "cfg.lr_multiplier", "cfg.train.max_iter"} <= targets
    assert "cfg.train.max_iter = 368750\n" in code
    assert "bottom_up=masktron.backbones.regnet.RegNet(" in code
    assert "stem_class=masktron.backbones.regnet.SimpleStem" in code
    assert 'in_features=["s1", "s2", "s3", "s4"]' in code  # the interpolation, resolved
    assert builtins.all(line.strip() for line in code.splitlines())

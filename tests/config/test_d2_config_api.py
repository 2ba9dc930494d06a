"""Detectron2's config behaviours that projects rely on: new keys by assignment (never from
files), CfgNode from a dict, config versions, and `@configurable`."""

import pytest
import torch
from omegaconf import OmegaConf

from masktron.config import (
    CfgNode,
    ConfigError,
    UnknownKeyError,
    configurable,
    downgrade_config,
    get_cfg,
    upgrade_config,
)


def write(path, text):
    path.write_text(text)
    return str(path)


def add_myproject_config(cfg):
    """What a Detectron2 project's add_*_config does."""
    cfg.MODEL.MY_HEAD = CfgNode()
    cfg.MODEL.MY_HEAD.DIM = 8
    cfg.MODEL.MY_HEAD.RATIOS = (1, 2)
    cfg.MODEL.ROI_HEADS.MY_FLAG = True
    cfg.MY_TOP = CfgNode({"A": 1, "B": {"C": "x"}})


def test_new_keys_by_assignment_then_from_a_file(tmp_path):
    cfg = get_cfg()
    add_myproject_config(cfg)
    assert cfg.MODEL.MY_HEAD.DIM == 8 and cfg.MODEL.MY_HEAD.RATIOS == [1, 2]
    assert cfg.MY_TOP.B.C == "x" and cfg.MODEL.ROI_HEADS.MY_FLAG is True
    # A file may now set the added keys, and the schema's keys keep their types.
    cfg.merge_from_file(
        write(tmp_path / "p.yaml", "MODEL:\n  MY_HEAD:\n    DIM: 16\n  MASK_ON: True\n")
    )
    assert cfg.MODEL.MY_HEAD.DIM == 16 and cfg.MODEL.MASK_ON is True
    cfg.merge_from_list(["MODEL.ROI_HEADS.MY_FLAG", "False", "MY_TOP.A", "3"])
    assert cfg.MODEL.ROI_HEADS.MY_FLAG is False and cfg.MY_TOP.A == 3
    # ... but keys nobody added are refused from files and lists, with the nearest key named.
    with pytest.raises(UnknownKeyError, match="MODEL.MY_HEAD.DIMS.*MODEL.MY_HEAD.DIM"):
        cfg.merge_from_file(write(tmp_path / "bad.yaml", "MODEL:\n  MY_HEAD:\n    DIMS: 1\n"))
    with pytest.raises(UnknownKeyError):
        cfg.merge_from_list(["MODEL.NOT_A_KEY", "1"])
    with pytest.raises(ConfigError, match="MODEL.RESNETS.DEPTH"):
        cfg.MODEL.RESNETS.DEPTH = "fifty"
    # The added keys survive clone, dump and reload.
    clone = cfg.clone()
    assert clone.MODEL.MY_HEAD.DIM == 16 and clone == cfg
    reloaded = get_cfg()
    add_myproject_config(reloaded)
    reloaded.merge_from_file(write(tmp_path / "dump.yaml", cfg.dump()))
    assert reloaded == cfg
    cfg.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        cfg.ANOTHER = 1
    assert not hasattr(cfg, "ANOTHER") and hasattr(cfg, "MY_TOP")


def test_cfgnode_from_a_dict_and_empty():
    node = CfgNode({"A": 1, "B": {"C": [1, 2]}})
    assert node.A == 1 and node.B.C == [1, 2] and set(node.keys()) == {"A", "B"}
    assert len(CfgNode()) == 0
    node.D = 4
    assert dict(node.items())["D"] == 4


def test_versions_round_trip_and_old_files(tmp_path):
    cfg = get_cfg()
    cfg.USER_CUSTOM = 1
    v0 = downgrade_config(cfg, to_version=0)
    assert v0.VERSION == 0 and v0.MODEL.RPN_HEAD.NAME == "StandardRPNHead"
    assert v0.MODEL.WEIGHT == "" and "WEIGHTS" not in v0.MODEL
    assert v0.MODEL.RPN.ANCHOR_SIZES == cfg.MODEL.ANCHOR_GENERATOR.SIZES
    assert upgrade_config(v0) == cfg
    with pytest.raises(ValueError):
        upgrade_config(cfg, to_version=1)
    # A v0 file renames its keys; a file without VERSION but with v1-only keys is v1.
    cfg.merge_from_file(write(tmp_path / "v0.yaml", "MODEL:\n  RPN_HEAD:\n    NAME: X\nVERSION: 0"))
    assert cfg.MODEL.RPN.HEAD_NAME == "X" and cfg.VERSION == 2
    cfg.merge_from_file(write(tmp_path / "v1.yaml", "MODEL:\n  WEIGHT: w.pkl\nTEST:\n  AUG_ON: 1"))
    assert cfg.MODEL.WEIGHTS == "w.pkl" and cfg.TEST.AUG.ENABLED is True


class _Head(torch.nn.Module):
    @configurable
    def __init__(self, in_dim: int, *, num_classes: int, scale: float = 1.0):
        """Doc of _Head."""
        super().__init__()
        self.args = (in_dim, num_classes, scale)

    @classmethod
    def from_config(cls, cfg, in_dim):
        return {"in_dim": in_dim, "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES}


class _LegacyHead(_Head):
    def __init__(self, cfg, in_dim):  # an old cfg-style subclass
        super().__init__(cfg, in_dim)


@configurable(from_config=lambda cfg, b: {"a": cfg.SOLVER.BASE_LR, "b": b})
def _func(a, b=2, c=3):
    return a, b, c


def test_configurable_class_and_function():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    assert _Head(3, num_classes=2).args == (3, 2, 1.0)
    assert _Head(cfg, 7).args == (7, 5, 1.0)
    assert _Head(cfg, in_dim=7, num_classes=9, scale=2.0).args == (7, 9, 2.0)  # overrides win
    assert _Head(cfg=cfg, in_dim=1).args == (1, 5, 1.0)
    assert _LegacyHead(cfg, 4).args == (4, 5, 1.0)
    assert "Doc of _Head" in _Head.__init__.__doc__
    with pytest.raises(TypeError):
        _Head(cfg, 7, unknown=1)
    assert _func(1) == (1, 2, 3)
    assert _func(cfg, b=5, c=6) == (cfg.SOLVER.BASE_LR, 5, 6)
    assert callable(_func.from_config)
    # An OmegaConf config is accepted as well.
    assert _Head(OmegaConf.create({"MODEL": {"ROI_HEADS": {"NUM_CLASSES": 4}}}), 1).args[1] == 4


def test_configurable_refuses_bad_classes():
    class NoFromConfig:
        @configurable
        def __init__(self, a=1):
            pass

    class NotClassmethod:
        @configurable
        def __init__(self, a=1):
            pass

        def from_config(self, cfg):
            return {}

    class BadFirstArg:
        @configurable
        def __init__(self, a=1):
            pass

        @classmethod
        def from_config(cls, config):
            return {}

    with pytest.raises(AttributeError):
        NoFromConfig(a=1)
    with pytest.raises(TypeError):
        NotClassmethod(a=1)
    with pytest.raises(TypeError, match="'cfg'"):
        BadFirstArg(get_cfg())

"""Detectron2's `X(cfg, ...)` constructors (`@configurable` / `from_config`) for RetinaNet,
PanopticFPN, ProposalNetwork, SemSegFPNHead and CascadeROIHeads: built from a config they equal
what `build_model` / the `build_*` functions make (same tensor names and shapes, and with the
same weights the same outputs), keyword arguments win over the config, and the registries
build them by name."""

from __future__ import annotations

import pytest
import torch

from masktron.modeling import (
    META_ARCH_REGISTRY,
    ROI_HEADS_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    build_model,
)
from masktron.models.build import build_backbone, build_roi_heads
from masktron.models.build_dense import build_sem_seg_head
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.proposal_network import ProposalNetwork
from masktron.models.retinanet import RetinaNet, RetinaNetHead
from masktron.models.roi_heads.cascade import CascadeROIHeads
from masktron.models.sem_seg_head import SemSegFPNHead
from tests.rcnn_tiny import make_inputs, tiny_cfg


def _cfg(name: str):
    cfg = tiny_cfg(name, depth=18)
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32  # GroupNorm(32) needs a multiple of 32
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 4
    return cfg


def _images():
    return [{"image": make_inputs()[0]["image"]}]


def _assert_same(built: torch.nn.Module, from_cfg: torch.nn.Module) -> None:
    """Same class, tensor names and shapes; then `from_cfg` gets `built`'s weights."""
    assert type(from_cfg) is type(built)
    shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in from_cfg.state_dict().items()} == shapes
    from_cfg.load_state_dict(built.state_dict())
    built.eval()
    from_cfg.eval()


def _assert_close(a, b) -> None:
    """Nested model outputs (dicts, lists, Instances, tensors) equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_close(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_close(x, y)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b)
    elif hasattr(a, "get_fields"):
        _assert_close(a.get_fields(), b.get_fields())
    elif hasattr(a, "tensor"):
        _assert_close(a.tensor, b.tensor)
    else:
        assert a == b


@pytest.mark.parametrize(
    "name, cls",
    [
        ("COCO-Detection/retinanet_R_50_FPN_1x.yaml", RetinaNet),
        ("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml", PanopticFPN),
        ("COCO-Detection/rpn_R_50_FPN_1x.yaml", ProposalNetwork),
    ],
)
def test_meta_architecture_from_cfg_equals_build_model(name, cls):
    cfg = _cfg(name)
    torch.manual_seed(0)
    built = build_model(cfg)
    from_cfg = cls(cfg)
    _assert_same(built, from_cfg)
    with torch.no_grad():
        _assert_close(built(_images()), from_cfg(_images()))
    assert META_ARCH_REGISTRY.get(cls.__name__) is cls  # what Detectron2's lookup calls


def test_from_cfg_keyword_arguments_win_over_the_config():
    cfg = _cfg("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    model = RetinaNet(cfg, test_score_thresh=0.3, max_detections_per_image=7)
    assert (model.test_score_thresh, model.max_detections_per_image) == (0.3, 7)
    shapes = [model.backbone.output_shape()[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
    head = RetinaNetHead(cfg, shapes)
    assert {k: v.shape for k, v in head.state_dict().items()} == {
        k: v.shape for k, v in model.head.state_dict().items()
    }
    panoptic = PanopticFPN(
        _cfg("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml"), combine_overlap_thresh=0.8
    )
    assert panoptic.combine_overlap_thresh == 0.8


def test_sem_seg_head_from_cfg_equals_build_sem_seg_head():
    cfg = _cfg("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml")
    backbone = build_backbone(cfg)
    shapes = backbone.output_shape()
    built = build_sem_seg_head(cfg, shapes)
    from_cfg = SemSegFPNHead(cfg, shapes)
    _assert_same(built, from_cfg)
    assert SEM_SEG_HEADS_REGISTRY.get("SemSegFPNHead") is SemSegFPNHead
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 64, 96) * 255)
        _assert_close(built(features), from_cfg(features))


def test_cascade_roi_heads_from_cfg_equals_build_roi_heads():
    cfg = _cfg("Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    shapes = model.backbone.output_shape()
    built = build_roi_heads(cfg, shapes)
    from_cfg = CascadeROIHeads(cfg, shapes)
    _assert_same(built, from_cfg)
    assert len(from_cfg.box_predictor) == len(cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS) == 3
    weights = [p.box2box_transform.weights for p in from_cfg.box_predictor]
    assert weights == [
        tuple(map(float, w)) for w in cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS
    ]
    assert ROI_HEADS_REGISTRY.get("CascadeROIHeads") is CascadeROIHeads
    model.eval()
    with torch.no_grad():
        model.roi_heads = built
        expected = model(_images())
        model.roi_heads = from_cfg
        _assert_close(expected, model(_images()))

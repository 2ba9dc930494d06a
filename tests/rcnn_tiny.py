"""Tiny R-CNN variants for model tests: zoo configs shrunk to run in about a second, and a
two-image training batch (one image with two objects, one empty)."""

import torch

from masktron import model_zoo
from masktron.structures import Boxes, Instances, PolygonMasks


def tiny_cfg(name: str, depth: int = 50):
    """The zoo config at a size that runs in a second: ResNet-18-like depth is not enough to
    test names, so keep the depth but shrink widths, sampling and proposal counts (tests of
    the heads alone may ask for `depth=18`)."""
    cfg = model_zoo.get_config(name)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.NUM_GROUPS = 1 if cfg.MODEL.RESNETS.NUM_GROUPS == 1 else 2
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = "BN"
    return cfg


def make_inputs():
    square = [[10.0, 10.0, 50.0, 10.0, 50.0, 40.0, 10.0, 40.0]]
    tri = [[60.0, 60.0, 90.0, 60.0, 75.0, 90.0]]
    with_objects = Instances(
        (96, 128),
        gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 60.0, 90.0, 90.0]])),
        gt_classes=torch.tensor([0, 2]),
        gt_masks=PolygonMasks([square, tri]),
    )
    empty = Instances(
        (96, 128),
        gt_boxes=Boxes(torch.zeros(0, 4)),
        gt_classes=torch.zeros(0, dtype=torch.int64),
        gt_masks=PolygonMasks([]),
    )
    g = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(3, 96, 128, generator=g) * 255  # noqa: E731
    return [{"image": image(), "instances": with_objects}, {"image": image(), "instances": empty}]

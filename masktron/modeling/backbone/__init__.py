"""Detectron2's `detectron2.modeling.backbone` import path (backbones live in
`masktron.backbones`, their config builders in `masktron.models.build`)."""

from masktron.backbones.backbone import Backbone
from masktron.backbones.fpn import FPN
from masktron.backbones.regnet import AnyNet, RegNet
from masktron.backbones.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet, make_stage
from masktron.backbones.resnet import _Block as ResNetBlockBase
from masktron.models.build import build_backbone, build_resnet_backbone
from masktron.models.registry import BACKBONE_REGISTRY

__all__ = [
    "BACKBONE_REGISTRY",
    "FPN",
    "AnyNet",
    "RegNet",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "ResNet",
    "ResNetBlockBase",
    "build_backbone",
    "build_resnet_backbone",
    "make_stage",
]

"""Detectron2's `detectron2.modeling.backbone.resnet` import path."""

from masktron.backbones.resnet import (  # noqa: F401
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    ResNet,
    make_stage,
)
from masktron.models.build import build_resnet_backbone  # noqa: F401

"""Detectron2's `detectron2.modeling.backbone.fpn` import path."""

from masktron.backbones.fpn import FPN, LastLevelMaxPool, LastLevelP6P7  # noqa: F401
from masktron.models.build import (  # noqa: F401
    build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone,
)

"""Detectron2's `detectron2.modeling.backbone.regnet` import path."""

from masktron.backbones.regnet import (  # noqa: F401
    AnyNet,
    RegNet,
    ResBasicBlock,
    ResBottleneckBlock,
    ResStem,
    SimpleStem,
    VanillaBlock,
)

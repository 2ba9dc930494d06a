"""Detectron2's `detectron2.modeling.backbone.backbone` import path."""

from masktron.backbones.backbone import Backbone  # noqa: F401

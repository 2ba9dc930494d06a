"""Detectron2's `detectron2.modeling.backbone.build` import path."""

from masktron.models.build import build_backbone  # noqa: F401
from masktron.models.registry import BACKBONE_REGISTRY  # noqa: F401

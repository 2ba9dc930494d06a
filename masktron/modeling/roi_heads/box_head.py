"""Detectron2's `detectron2.modeling.roi_heads.box_head` import path."""

from masktron.models.build import build_box_head  # noqa: F401
from masktron.models.registry import ROI_BOX_HEAD_REGISTRY  # noqa: F401
from masktron.models.roi_heads.box_head import FastRCNNConvFCHead  # noqa: F401

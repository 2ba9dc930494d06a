"""Detectron2's `detectron2.modeling.roi_heads.roi_heads` import path."""

from masktron.models.build import build_roi_heads  # noqa: F401
from masktron.models.registry import ROI_HEADS_REGISTRY  # noqa: F401
from masktron.models.roi_heads.roi_heads import (  # noqa: F401
    Res5ROIHeads,
    ROIHeads,
    StandardROIHeads,
    select_foreground_proposals,
)

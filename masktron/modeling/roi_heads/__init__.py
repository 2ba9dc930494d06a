"""Detectron2's `detectron2.modeling.roi_heads` import path."""

from masktron.models.build import build_box_head, build_mask_head, build_roi_heads
from masktron.models.registry import (
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
)
from masktron.models.roi_heads.box_head import FastRCNNConvFCHead, FastRCNNOutputLayers
from masktron.models.roi_heads.keypoint_head import KRCNNConvDeconvUpsampleHead
from masktron.models.roi_heads.mask_head import BaseMaskRCNNHead, MaskRCNNConvUpsampleHead
from masktron.models.roi_heads.roi_heads import (
    Res5ROIHeads,
    ROIHeads,
    StandardROIHeads,
    select_foreground_proposals,
)

__all__ = [
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "BaseMaskRCNNHead",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "KRCNNConvDeconvUpsampleHead",
    "MaskRCNNConvUpsampleHead",
    "ROIHeads",
    "Res5ROIHeads",
    "StandardROIHeads",
    "build_box_head",
    "build_mask_head",
    "build_roi_heads",
    "select_foreground_proposals",
]

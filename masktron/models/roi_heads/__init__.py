"""RoI heads of R-CNN models: box head, mask head and the heads that run them on proposals."""

from masktron.models.roi_heads.box_head import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    fast_rcnn_inference,
)
from masktron.models.roi_heads.cascade import CascadeROIHeads
from masktron.models.roi_heads.keypoint_head import (
    KRCNNConvDeconvUpsampleHead,
    keypoint_rcnn_inference,
    keypoint_rcnn_loss,
)
from masktron.models.roi_heads.mask_head import (
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from masktron.models.roi_heads.roi_heads import (
    Res5ROIHeads,
    ROIHeads,
    StandardROIHeads,
    select_foreground_proposals,
)

__all__ = [
    "CascadeROIHeads",
    "KRCNNConvDeconvUpsampleHead",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "MaskRCNNConvUpsampleHead",
    "ROIHeads",
    "Res5ROIHeads",
    "StandardROIHeads",
    "fast_rcnn_inference",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
    "select_foreground_proposals",
]

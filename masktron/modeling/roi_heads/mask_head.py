"""Detectron2's `detectron2.modeling.roi_heads.mask_head` import path."""

from masktron.models.build import build_mask_head  # noqa: F401
from masktron.models.registry import ROI_MASK_HEAD_REGISTRY  # noqa: F401
from masktron.models.roi_heads.mask_head import (  # noqa: F401
    BaseMaskRCNNHead,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
    mask_rcnn_loss,
)

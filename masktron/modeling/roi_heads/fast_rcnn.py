"""Detectron2's `detectron2.modeling.roi_heads.fast_rcnn` import path."""

from masktron.models.roi_heads.box_head import (  # noqa: F401
    FastRCNNOutputLayers,
    fast_rcnn_inference,
)
from masktron.models.roi_heads.box_head import (  # noqa: F401
    _inference_single_image as fast_rcnn_inference_single_image,
)

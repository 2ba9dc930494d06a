"""Detectron2's `detectron2.modeling.poolers` import path."""

from masktron.models.poolers import ROIPooler, assign_boxes_to_levels  # noqa: F401
from masktron.models.poolers import boxes_to_rois as convert_boxes_to_pooler_format  # noqa: F401

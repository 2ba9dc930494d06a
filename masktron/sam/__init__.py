"""Meta's `segment_anything` API: port code by changing `segment_anything` to `masktron.sam`."""

from masktron.models.sam import (
    ResizeLongestSide,
    Sam,
    build_sam,
    build_sam_vit_b,
    build_sam_vit_h,
    build_sam_vit_l,
    sam_model_registry,
)
from masktron.predictors.auto_mask import SamAutomaticMaskGenerator
from masktron.predictors.sam_bridge import refine_with_sam
from masktron.predictors.sam_predictor import SamPredictor

__all__ = [
    "ResizeLongestSide",
    "Sam",
    "SamAutomaticMaskGenerator",
    "SamPredictor",
    "build_sam",
    "build_sam_vit_b",
    "build_sam_vit_h",
    "build_sam_vit_l",
    "refine_with_sam",
    "sam_model_registry",
]

"""`sam2.build_sam`'s builders (re-exported from masktron.models.sam2.build)."""

from masktron.models.sam2.build import (
    build_sam2,
    build_sam2_hiera_base_plus,
    build_sam2_hiera_large,
    build_sam2_hiera_small,
    build_sam2_hiera_tiny,
    build_sam2_video_model,
)
from masktron.predictors.sam2_video import build_sam2_video_predictor

__all__ = [
    "build_sam2",
    "build_sam2_hiera_base_plus",
    "build_sam2_hiera_large",
    "build_sam2_hiera_small",
    "build_sam2_hiera_tiny",
    "build_sam2_video_model",
    "build_sam2_video_predictor",
]

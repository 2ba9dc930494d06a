"""Meta's `sam2` API: port code by changing `sam2` to `masktron.sam2` in its imports."""

from masktron.sam2.automatic_mask_generator import (
    SAM2AutomaticMaskGenerator as SAM2AutomaticMaskGenerator,
)
from masktron.sam2.build_sam import build_sam2, build_sam2_video_model, build_sam2_video_predictor
from masktron.sam2.sam2_image_predictor import SAM2ImagePredictor as SAM2ImagePredictor
from masktron.sam2.sam2_video_predictor import SAM2VideoPredictor as SAM2VideoPredictor

__all__ = ["build_sam2", "build_sam2_video_model", "build_sam2_video_predictor"]

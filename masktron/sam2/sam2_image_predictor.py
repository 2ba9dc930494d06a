"""Meta's `sam2.sam2_image_predictor` import path: `SAM2ImagePredictor`."""

from masktron.predictors.sam2_image import SAM2ImagePredictor

__all__ = ["SAM2ImagePredictor"]

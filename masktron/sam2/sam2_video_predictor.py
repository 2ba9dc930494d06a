"""Meta's `sam2.sam2_video_predictor` import path: `SAM2VideoPredictor`."""

from masktron.predictors.sam2_video import SAM2VideoPredictor

__all__ = ["SAM2VideoPredictor"]

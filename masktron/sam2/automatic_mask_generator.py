"""Meta's `sam2.automatic_mask_generator` import path: `SAM2AutomaticMaskGenerator`."""

from masktron.predictors.sam2_auto_mask import SAM2AutomaticMaskGenerator

__all__ = ["SAM2AutomaticMaskGenerator"]

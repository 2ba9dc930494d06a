"""Detectron2's `detectron2.modeling` import path, re-exported from `masktron.models`."""

from masktron.models.build import build_backbone, build_model
from masktron.models.postprocessing import detector_postprocess
from masktron.models.rcnn import GeneralizedRCNN

__all__ = ["GeneralizedRCNN", "build_backbone", "build_model", "detector_postprocess"]

"""Detectron2's `detectron2.modeling.postprocessing` import path."""

from masktron.models.postprocessing import detector_postprocess, sem_seg_postprocess  # noqa: F401

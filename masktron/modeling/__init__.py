"""Detectron2's `detectron2.modeling` import path, re-exported from `masktron.models`."""

from masktron.models.build import build_backbone, build_model
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.postprocessing import detector_postprocess, sem_seg_postprocess
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.retinanet import RetinaNet
from masktron.models.sem_seg_head import SemSegFPNHead
from masktron.models.tta import DatasetMapperTTA, GeneralizedRCNNWithTTA

__all__ = [
    "DatasetMapperTTA",
    "GeneralizedRCNNWithTTA",
    "GeneralizedRCNN",
    "PanopticFPN",
    "RetinaNet",
    "SemSegFPNHead",
    "build_backbone",
    "build_model",
    "detector_postprocess",
    "sem_seg_postprocess",
]

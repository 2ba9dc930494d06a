"""Detectron2's `detectron2.modeling.test_time_augmentation` import path."""

from masktron.models.tta import DatasetMapperTTA, GeneralizedRCNNWithTTA

__all__ = ["DatasetMapperTTA", "GeneralizedRCNNWithTTA"]

"""Detectron2's `detectron2.modeling.meta_arch.retinanet` import path."""

from masktron.models.retinanet import RetinaNet, RetinaNetHead  # noqa: F401

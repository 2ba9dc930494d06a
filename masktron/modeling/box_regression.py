"""Detectron2's `detectron2.modeling.box_regression` import path."""

from masktron.models.box_coder import DEFAULT_SCALE_CLAMP as _DEFAULT_SCALE_CLAMP  # noqa: F401
from masktron.models.box_coder import Box2BoxTransform  # noqa: F401

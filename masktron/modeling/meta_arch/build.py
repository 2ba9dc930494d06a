"""Detectron2's `detectron2.modeling.meta_arch.build` import path."""

from masktron.models.build import build_model  # noqa: F401
from masktron.models.registry import META_ARCH_REGISTRY  # noqa: F401

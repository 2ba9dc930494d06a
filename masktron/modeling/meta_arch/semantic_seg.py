"""Detectron2's `detectron2.modeling.meta_arch.semantic_seg` import path."""

from masktron.models.build_dense import build_sem_seg_head  # noqa: F401
from masktron.models.registry import SEM_SEG_HEADS_REGISTRY  # noqa: F401
from masktron.models.sem_seg_head import SemSegFPNHead  # noqa: F401

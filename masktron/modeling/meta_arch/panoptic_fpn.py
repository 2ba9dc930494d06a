"""Detectron2's `detectron2.modeling.meta_arch.panoptic_fpn` import path."""

from masktron.models.panoptic_fpn import (  # noqa: F401
    PanopticFPN,
    combine_semantic_and_instance_outputs,
)

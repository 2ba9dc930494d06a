"""Detectron2's `detectron2.modeling.anchor_generator` import path."""

from masktron.models.anchors import DefaultAnchorGenerator, generate_cell_anchors  # noqa: F401
from masktron.models.build import build_anchor_generator  # noqa: F401

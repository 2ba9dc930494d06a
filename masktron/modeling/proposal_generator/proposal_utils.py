"""Detectron2's `detectron2.modeling.proposal_generator.proposal_utils` import path."""

from masktron.models.roi_heads.roi_heads import add_ground_truth_to_proposals  # noqa: F401
from masktron.models.rpn import find_top_rpn_proposals  # noqa: F401

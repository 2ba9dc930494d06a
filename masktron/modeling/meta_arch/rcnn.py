"""Detectron2's `detectron2.modeling.meta_arch.rcnn` import path."""

from masktron.models.proposal_network import ProposalNetwork  # noqa: F401
from masktron.models.rcnn import GeneralizedRCNN  # noqa: F401

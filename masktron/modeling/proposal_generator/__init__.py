"""Detectron2's `detectron2.modeling.proposal_generator` import path."""

from masktron.models.build import build_proposal_generator, build_rpn_head
from masktron.models.registry import PROPOSAL_GENERATOR_REGISTRY, RPN_HEAD_REGISTRY
from masktron.models.rpn import RPN, StandardRPNHead

__all__ = [
    "PROPOSAL_GENERATOR_REGISTRY",
    "RPN",
    "RPN_HEAD_REGISTRY",
    "StandardRPNHead",
    "build_proposal_generator",
    "build_rpn_head",
]

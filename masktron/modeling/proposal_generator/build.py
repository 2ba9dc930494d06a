"""Detectron2's `detectron2.modeling.proposal_generator.build` import path."""

from masktron.models.build import build_proposal_generator  # noqa: F401
from masktron.models.registry import PROPOSAL_GENERATOR_REGISTRY  # noqa: F401

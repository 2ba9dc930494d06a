"""Detectron2's `detectron2.modeling.proposal_generator.rpn` import path."""

from masktron.models.build import build_rpn_head  # noqa: F401
from masktron.models.registry import RPN_HEAD_REGISTRY  # noqa: F401
from masktron.models.rpn import RPN, StandardRPNHead  # noqa: F401

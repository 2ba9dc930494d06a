"""Detectron2's `detectron2.modeling.matcher` import path."""

from masktron.models.matcher import Matcher  # noqa: F401

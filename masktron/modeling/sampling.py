"""Detectron2's `detectron2.modeling.sampling` import path."""

from masktron.models.matcher import subsample_labels  # noqa: F401

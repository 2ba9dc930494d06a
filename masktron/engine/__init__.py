"""Detectron2's `detectron2.engine` import path: predictors and (later) the trainer."""

from masktron.predictors.default_predictor import DefaultPredictor

__all__ = ["DefaultPredictor"]

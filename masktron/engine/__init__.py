"""Detectron2's `detectron2.engine` import path: predictors, the trainer, hooks, launching."""

from masktron.engine import hooks
from masktron.engine.defaults import (
    DefaultTrainer,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
)
from masktron.engine.hooks import HookBase
from masktron.engine.launch import launch
from masktron.engine.train_loop import AMPTrainer, SimpleTrainer, TrainerBase
from masktron.predictors.default_predictor import DefaultPredictor

__all__ = [
    "AMPTrainer",
    "DefaultPredictor",
    "DefaultTrainer",
    "HookBase",
    "SimpleTrainer",
    "TrainerBase",
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "default_writers",
    "hooks",
    "launch",
]

"""Checkpoints: safe loading of Detectron2/Caffe2/torchvision files, a download cache, saving.

Same import paths as `detectron2.checkpoint`:

    from masktron.checkpoint import DetectionCheckpointer, PeriodicCheckpointer
    DetectionCheckpointer(model).load("detectron2://ImageNetPretrained/MSRA/R-50.pkl")

See docs/checkpoints.md.
"""

from masktron.checkpoint.checkpointer import Checkpointer, PeriodicCheckpointer
from masktron.checkpoint.detection_checkpoint import DetectionCheckpointer
from masktron.checkpoint.download import DownloadError, get_cache_dir, get_local_path
from masktron.checkpoint.matching import IncompatibleKeys
from masktron.checkpoint.safe_pickle import (
    CheckpointError,
    UnsafePickleError,
    load_pickle,
    load_torch,
)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "DetectionCheckpointer",
    "DownloadError",
    "IncompatibleKeys",
    "PeriodicCheckpointer",
    "UnsafePickleError",
    "get_cache_dir",
    "get_local_path",
    "load_pickle",
    "load_torch",
]

"""Putting checkpoint tensors into a model: exact or suffix-matched names, shape checks, reports.

Shared by `Checkpointer` (exact names) and `DetectionCheckpointer` (matching heuristics).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from masktron.checkpoint.matching import (
    IncompatibleKeys,
    align_by_suffix,
    filter_reused_missing_keys,
    missing_keys_message,
    strip_prefix_if_present,
    unexpected_keys_message,
)
from masktron.checkpoint.safe_pickle import CheckpointError

__all__ = ["load_aligned", "load_exact", "log_incompatible_keys", "to_tensors"]

logger = logging.getLogger(__name__)

# Buffers that old checkpoints lack or carry although the model computes them from its config.
_NOT_MISSING = ("pixel_mean", "pixel_std")
_NOT_UNEXPECTED = ("anchor_generator.cell_anchors",)


def to_tensors(state: Mapping[str, Any], path: str) -> dict[str, torch.Tensor]:
    """A state dict whose numpy arrays became CPU tensors; other value types are refused.

    Args:
        state: name -> tensor or numeric numpy array (any shape).
        path: the file, named in errors.

    Raises:
        CheckpointError: a value is neither a tensor nor a numeric array.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: the model weights are a {type(state).__name__}, not a dict")
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            out[name] = value
            continue
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biufc":
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise CheckpointError(
                f"{path}: entry {name!r} of the model weights is {kind}, not a numeric array"
            )
        # Native byte order, contiguous and writable, as torch.from_numpy needs.
        value = np.require(value, dtype=value.dtype.newbyteorder("="), requirements=["C", "W"])
        out[name] = torch.from_numpy(value)
    return out


def _fill_norm_statistics(model_state: Mapping[str, torch.Tensor], state: dict) -> list[str]:
    """Give BatchNorm layers whose file has weights but no statistics mean 0 / var 1.

    Caffe2 ImageNet files (and Detectron2 < v0.1 FrozenBN files) store only the affine scale and
    shift; Detectron2 then uses running_mean 0 and running_var 1 (not the layer's `1 - eps`
    initial value), so the layer computes `weight / sqrt(1 + eps) * x + bias`.
    """
    filled = []
    for key in model_state:
        if not key.endswith(".running_mean"):
            continue
        prefix = key[: -len("running_mean")]
        var_key = prefix + "running_var"
        if var_key not in model_state or prefix + "weight" not in state:
            continue
        for name, fill in ((key, torch.zeros_like), (var_key, torch.ones_like)):
            if name not in state:
                state[name] = fill(model_state[name])
                filled.append(name)
    if filled:
        logger.info(
            "%d normalization statistics absent from the checkpoint set to mean 0 / var 1",
            len(filled),
        )
    return filled


def _shape_mismatches(
    model_state: Mapping[str, torch.Tensor], state: dict[str, torch.Tensor]
) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """Remove (and list) tensors whose shape differs from the model's (how a model is re-headed)."""
    incorrect = []
    for key in list(state):
        target = model_state.get(key)
        if target is None or isinstance(target, nn.parameter.UninitializedParameter):
            continue
        if tuple(target.shape) != tuple(state[key].shape):
            incorrect.append((key, tuple(state[key].shape), tuple(target.shape)))
            del state[key]
    return incorrect


def _load(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in _NOT_MISSING]
    unexpected = [k for k in result.unexpected_keys if not any(s in k for s in _NOT_UNEXPECTED)]
    return missing, unexpected


def load_exact(model: nn.Module, state: dict[str, torch.Tensor]) -> IncompatibleKeys:
    """Load tensors whose names equal the model's (after removing a DDP "module." prefix)."""
    state = dict(strip_prefix_if_present(state, "module."))
    model_state = model.state_dict()
    incorrect = _shape_mismatches(model_state, state)
    _fill_norm_statistics(model_state, state)
    missing, unexpected = _load(model, state)
    return IncompatibleKeys(missing, unexpected, incorrect)


def load_aligned(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    original_names: Mapping[str, str] | None = None,
) -> IncompatibleKeys:
    """Load tensors matched to the model's names by longest whole-component suffix.

    Args:
        model: the model.
        state: checkpoint name (possibly converted) -> tensor.
        original_names: converted name -> name in the file, so reports use the file's names.
    """
    state = strip_prefix_if_present(state, "module.")
    model_state = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in model_state.items()}
    aligned = align_by_suffix(shapes, state, original_names)
    matched = dict(aligned.state_dict)
    _fill_norm_statistics(model_state, matched)
    missing, unexpected = _load(model, matched)
    unexpected += [k for k in aligned.unexpected_keys if not any(s in k for s in _NOT_UNEXPECTED)]
    logger.info("Matched %d of %d checkpoint tensors to the model", len(matched), len(state))
    return IncompatibleKeys(missing, unexpected, aligned.incorrect_shapes)


def log_incompatible_keys(
    log: logging.Logger, model: nn.Module, incompatible: IncompatibleKeys
) -> None:
    """Warn about skipped shapes, missing and unexpected names, grouped by common prefix."""
    for key, shape_ckpt, shape_model in incompatible.incorrect_shapes:
        log.warning(
            "Skip loading parameter '%s' to the model due to incompatible shapes: %s in the "
            "checkpoint but %s in the model! You might want to double check if this is expected.",
            key,
            shape_ckpt,
            shape_model,
        )
    missing = filter_reused_missing_keys(model, incompatible.missing_keys)
    if missing:
        log.warning(missing_keys_message(missing))
    if incompatible.unexpected_keys:
        log.warning(unexpected_keys_message(incompatible.unexpected_keys))

"""The allowed range of each configuration value, checked in one place before a run starts.

The schema (`schema.py`) says each key's type; this table says which values of that type can
work. `validate(cfg)` runs when a root config is frozen (`cfg.freeze()`, as every command does)
and when a trainer or predictor is built from one, and reports every violation at once, e.g.

    bad config values:
      SOLVER.IMS_PER_BATCH = 0: must be an integer >= 1
      MODEL.DEVICE = 'bogus': must be a torch device such as 'cpu', 'cuda' or 'cuda:1'

Without it such values fail much later, deep inside a model or a loader, or not at all
(`SCORE_THRESH_TEST 2` silently gives no detections).

`validate_batch_memory(cfg, ...)` (run when `DefaultTrainer` is built, before the model and the
loader) refuses a `SOLVER.IMS_PER_BATCH` whose input batch alone cannot fit in this machine's
RAM; see `batch_memory_problem` for the estimate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "RULES",
    "Rule",
    "batch_memory_problem",
    "config_problems",
    "physical_memory",
    "validate",
    "validate_batch_memory",
]


@dataclass(frozen=True)
class Rule:
    """One key, a test its value must pass, and the allowed range in words."""

    key: str
    ok: Callable[[Any], bool]
    allowed: str


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _in_range(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and low <= v <= high


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v >= low


def _positive(v: Any) -> bool:
    return _number(v) and v > 0


def _device(value: Any) -> bool:
    try:
        torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def _sizes(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_int_at_least(1)(v) for v in value)


def _thresholds(value: Any) -> bool:
    return isinstance(value, list) and all(_in_range(0.0, 1.0)(v) for v in value)


_UNIT = "a number in [0, 1]"

RULES: tuple[Rule, ...] = (
    Rule("MODEL.DEVICE", _device, "a torch device such as 'cpu', 'cuda' or 'cuda:1'"),
    Rule("MODEL.ROI_HEADS.NUM_CLASSES", _int_at_least(1), "an integer >= 1"),
    Rule("MODEL.RETINANET.NUM_CLASSES", _int_at_least(1), "an integer >= 1"),
    Rule("MODEL.SEM_SEG_HEAD.NUM_CLASSES", _int_at_least(1), "an integer >= 1"),
    Rule("MODEL.ROI_HEADS.SCORE_THRESH_TEST", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.RETINANET.SCORE_THRESH_TEST", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.ROI_HEADS.NMS_THRESH_TEST", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.RETINANET.NMS_THRESH_TEST", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.RPN.NMS_THRESH", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.ROI_HEADS.IOU_THRESHOLDS", _thresholds, "a list of numbers in [0, 1]"),
    Rule("MODEL.RPN.IOU_THRESHOLDS", _thresholds, "a list of numbers in [0, 1]"),
    Rule("MODEL.ROI_HEADS.POSITIVE_FRACTION", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.RPN.POSITIVE_FRACTION", _in_range(0.0, 1.0), _UNIT),
    Rule("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", _int_at_least(1), "an integer >= 1"),
    Rule("MODEL.RPN.BATCH_SIZE_PER_IMAGE", _int_at_least(1), "an integer >= 1"),
    Rule("INPUT.MIN_SIZE_TRAIN", _sizes, "a non-empty list of integers >= 1"),
    Rule("INPUT.MAX_SIZE_TRAIN", _int_at_least(1), "an integer >= 1"),
    Rule("INPUT.MIN_SIZE_TEST", _int_at_least(0), "an integer >= 0 (0: no resizing)"),
    Rule("INPUT.MAX_SIZE_TEST", _int_at_least(1), "an integer >= 1"),
    Rule("DATALOADER.NUM_WORKERS", _int_at_least(0), "an integer >= 0"),
    Rule("SOLVER.IMS_PER_BATCH", _int_at_least(1), "an integer >= 1"),
    Rule("SOLVER.MAX_ITER", _int_at_least(0), "an integer >= 0"),
    Rule("SOLVER.BASE_LR", _at_least(0.0), "a finite number >= 0"),
    Rule("SOLVER.MOMENTUM", _in_range(0.0, 1.0), _UNIT),
    Rule("SOLVER.WEIGHT_DECAY", _at_least(0.0), "a finite number >= 0"),
    Rule("SOLVER.GAMMA", _positive, "a finite number > 0"),
    Rule("SOLVER.WARMUP_FACTOR", _in_range(0.0, 1.0), _UNIT),
    Rule("SOLVER.WARMUP_ITERS", _int_at_least(0), "an integer >= 0"),
    Rule("SOLVER.CHECKPOINT_PERIOD", _int_at_least(1), "an integer >= 1"),
    Rule("TEST.EVAL_PERIOD", _int_at_least(0), "an integer >= 0 (0: only at the end)"),
    Rule("TEST.DETECTIONS_PER_IMAGE", _int_at_least(1), "an integer >= 1"),
)


def _lookup(cfg: Any, key: str) -> tuple[bool, Any]:
    node = cfg
    for part in key.split("."):
        if part not in node:
            return False, None
        node = node[part]
    return True, node


def config_problems(cfg: Any) -> list[str]:
    """Every `KEY = value: must be <allowed>` line for the values of `cfg` that break `RULES`."""
    problems = []
    for rule in RULES:
        present, value = _lookup(cfg, rule.key)
        if present and not rule.ok(value):
            problems.append(f"{rule.key} = {value!r}: must be {rule.allowed}")
    return problems


def validate(cfg: Any) -> None:
    """Raise `ConfigError` listing every value of `cfg` outside its allowed range."""
    from masktron.config.config import ConfigError

    problems = config_problems(cfg)
    if problems:
        raise ConfigError("bad config values:\n  " + "\n  ".join(problems))


def physical_memory() -> int | None:
    """This machine's RAM in bytes (`os.sysconf`), or None where it is unknown (Windows)."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def batch_memory_problem(
    cfg: Any, world_size: int = 1, local_size: int = 1, memory: int | None = None
) -> str | None:
    """A message when the training input batch alone cannot fit in RAM, else None.

    The estimate is a lower bound: each process holds `SOLVER.IMS_PER_BATCH // world_size`
    images of at most `min(max(INPUT.MIN_SIZE_TRAIN), INPUT.MAX_SIZE_TRAIN) x
    INPUT.MAX_SIZE_TRAIN` pixels (the shortest-edge resize), 3 channels, 1 byte per value as
    loaded (uint8), plus 4 per value for the normalized float32 batch when `MODEL.DEVICE` is
    the CPU (on a GPU that copy is in the GPU's memory); the `local_size` processes of this
    machine share its RAM. Training needs many times more (the backbone's activations), so a
    batch refused here cannot run, and one admitted may still not fit.

    Args:
        world_size: processes in the run; local_size: those on this machine.
        memory: RAM in bytes (default `physical_memory()`; None there: nothing is checked).
    """
    memory = physical_memory() if memory is None else memory
    try:
        total = int(cfg.SOLVER.IMS_PER_BATCH)
        long_side = int(cfg.INPUT.MAX_SIZE_TRAIN)
        short_side = min(max(int(v) for v in cfg.INPUT.MIN_SIZE_TRAIN), long_side)
        on_cpu = str(cfg.MODEL.DEVICE).startswith("cpu")
    except (AttributeError, TypeError, ValueError):  # bad values: `validate` names them
        return None
    if memory is None or total < 1 or long_side < 1 or short_side < 1:
        return None
    per_process = max(total // max(world_size, 1), 1)
    bytes_per_value = 1 + (4 if on_cpu else 0)
    per_image = short_side * long_side * 3 * bytes_per_value
    need = per_process * max(local_size, 1) * per_image
    if need <= memory:
        return None
    fits = memory // (per_image * max(local_size, 1)) * max(world_size, 1)
    return (
        f"SOLVER.IMS_PER_BATCH = {total}: {per_process} image(s) per batch per process of up "
        f"to {short_side} x {long_side} pixels need at least {_gib(need)} for the input batch "
        f"alone (3 channels x {bytes_per_value} byte(s), {local_size} process(es) on this "
        f"machine), more than its {_gib(memory)} of RAM (the input of at most {fits} image(s) "
        "per batch would fit, and training needs several times more); lower "
        "SOLVER.IMS_PER_BATCH, or INPUT.MAX_SIZE_TRAIN / INPUT.MIN_SIZE_TRAIN"
    )


def validate_batch_memory(cfg: Any, world_size: int = 1, local_size: int = 1) -> None:
    """Raise `ConfigError` when `batch_memory_problem` finds the batch cannot fit."""
    from masktron.config.config import ConfigError

    problem = batch_memory_problem(cfg, world_size, local_size)
    if problem:
        raise ConfigError(f"bad config values:\n  {problem}")

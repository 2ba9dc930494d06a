"""Learning-rate schedules as multipliers of each parameter group's base learning rate.

A `ParamScheduler` maps training progress `where` in [0, 1] to a number; `LRMultiplier` sets
every group's lr to `base_lr * multiplier(iteration / max_iter)` after each `step()`. These
reproduce Detectron2's schedules (fvcore's param schedulers wrapped in `WarmupParamScheduler`):
the same learning rate at every iteration.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "CompositeParamScheduler",
    "ConstantParamScheduler",
    "CosineParamScheduler",
    "LRMultiplier",
    "LinearParamScheduler",
    "MultiStepParamScheduler",
    "ParamScheduler",
    "StepWithFixedGammaParamScheduler",
    "WarmupParamScheduler",
]

# Progress values are iteration / max_iter; this absorbs their rounding at range boundaries.
_EPS = 1e-6


class ParamScheduler:
    """A value as a function of training progress `where` in [0, 1]."""

    def __call__(self, where: float) -> float:
        raise NotImplementedError


class ConstantParamScheduler(ParamScheduler):
    def __init__(self, value: float):
        self.value = value

    def __call__(self, where: float) -> float:
        return self.value


class LinearParamScheduler(ParamScheduler):
    """From `start_value` at where=0 to `end_value` at where=1."""

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def __call__(self, where: float) -> float:
        return self.start_value + (self.end_value - self.start_value) * where


class CosineParamScheduler(ParamScheduler):
    """Half a cosine from `start_value` (where=0) down to `end_value` (where=1)."""

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def __call__(self, where: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * where))
        return self.end_value + (self.start_value - self.end_value) * cosine


class MultiStepParamScheduler(ParamScheduler):
    """`values[k]` from update `milestones[k-1]` (inclusive) to `milestones[k]` (exclusive).

    Args:
        values: one more value than milestones.
        num_updates: the number of updates `where=1` stands for.
        milestones: increasing updates in (0, num_updates); None: equally spaced.
    """

    def __init__(
        self, values: Sequence[float], num_updates: int, milestones: Sequence[int] | None = None
    ):
        if milestones is None:
            width = math.ceil(num_updates / len(values))
            milestones = [width * (k + 1) for k in range(len(values) - 1)]
        milestones = [int(m) for m in milestones]
        if len(milestones) != len(values) - 1:
            raise ValueError(
                f"{len(values)} values need {len(values) - 1} milestones, got {milestones}"
            )
        if any(b <= a for a, b in zip([0, *milestones], milestones)) or (
            milestones and milestones[-1] >= num_updates
        ):
            raise ValueError(
                f"milestones {milestones} must increase strictly within (0, {num_updates})"
            )
        self.values = list(values)
        self.milestones = milestones
        self.num_updates = num_updates

    def __call__(self, where: float) -> float:
        update = int((where + _EPS) * self.num_updates)
        return self.values[bisect.bisect_right(self.milestones, update)]


class StepWithFixedGammaParamScheduler(ParamScheduler):
    """`base_value * gamma**k` over `num_decays + 1` equal parts of training."""

    def __init__(self, base_value: float, num_decays: int, gamma: float, num_updates: int):
        if base_value <= 0 or gamma <= 0:
            raise ValueError("base_value and gamma must be positive")
        if num_decays < 1 or num_updates < 1:
            raise ValueError("num_decays and num_updates must be positive")
        self.values = [base_value * gamma**k for k in range(num_decays + 1)]

    def __call__(self, where: float) -> float:
        index = int((where + _EPS) * len(self.values))
        return self.values[min(index, len(self.values) - 1)]


class CompositeParamScheduler(ParamScheduler):
    """Schedulers one after another, each for a fraction `lengths[i]` of training.

    Args:
        interval_scaling: per scheduler, "rescaled" (it sees its own progress 0..1) or "fixed"
            (it sees the global progress).
    """

    def __init__(
        self,
        schedulers: Sequence[ParamScheduler],
        lengths: Sequence[float],
        interval_scaling: Sequence[str],
    ):
        if not schedulers or len({len(schedulers), len(lengths), len(interval_scaling)}) != 1:
            raise ValueError("need as many lengths and interval_scaling entries as schedulers")
        if abs(sum(lengths) - 1.0) >= 1e-3:
            raise ValueError(f"lengths must sum to 1, got {list(lengths)}")
        if any(s not in ("rescaled", "fixed") for s in interval_scaling):
            raise ValueError(f"interval_scaling must be 'rescaled' or 'fixed': {interval_scaling}")
        self.schedulers = list(schedulers)
        self.lengths = [*lengths[:-1], 1.0 - sum(lengths[:-1])]
        self.interval_scaling = list(interval_scaling)

    def __call__(self, where: float) -> float:
        index, end = 0, self.lengths[0]
        while where + _EPS > end and index < len(self.schedulers) - 1:
            index += 1
            end += self.lengths[index]
        if self.interval_scaling[index] == "rescaled":
            start = end - self.lengths[index]
            where = (where - start) / self.lengths[index]
        return self.schedulers[index](where)


class WarmupParamScheduler(CompositeParamScheduler):
    """`scheduler` preceded by a warmup over the first `warmup_length` of training.

    Linear warmup goes from `warmup_factor * scheduler(0)` to the value the scheduler has where
    the warmup ends; constant warmup stays at `warmup_factor * scheduler(0)`. After warmup the
    scheduler sees the global progress, or (`rescale_interval`) the progress after warmup.
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        start = warmup_factor * scheduler(0.0)
        end = scheduler(0.0) if rescale_interval else scheduler(warmup_length)
        if warmup_method == "constant":
            warmup: ParamScheduler = ConstantParamScheduler(start)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start, end)
        else:
            raise ValueError(
                f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant', got {warmup_method!r}"
            )
        super().__init__(
            [warmup, scheduler],
            lengths=[warmup_length, 1.0 - warmup_length],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
        )


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Each group's lr = its initial lr x `multiplier(last_epoch / max_iter)`.

    "epoch" means iteration here: call `step()` once per iteration.

    Args:
        optimizer: its groups' `initial_lr` (set on construction from `lr`) are the base lrs.
        multiplier: a `ParamScheduler`.
        max_iter: the number of iterations where=1 stands for.
        last_iter: the iteration of the last step (-1: none yet).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        multiplier: ParamScheduler,
        max_iter: int,
        last_iter: int = -1,
    ):
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(f"multiplier must be a ParamScheduler, got {type(multiplier)}")
        if max_iter <= 0:
            raise ValueError(f"max_iter must be positive, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def get_lr(self) -> list[Any]:
        factor = self._multiplier(self.last_epoch / self._max_iter)
        return [base_lr * factor for base_lr in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        # The multiplier is code, rebuilt from the config; only the position is state.
        return {
            "base_lrs": list(self.base_lrs),
            "last_epoch": self.last_epoch,
            "_last_lr": list(self.get_last_lr()),
            "_step_count": self._step_count,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = list(state_dict.get("_last_lr", self.get_lr()))
        self._step_count = int(state_dict.get("_step_count", 1))

"""Hooks that act on an evaluation metric: `BestCheckpointer` and `EarlyStopping`.

They read the metric from the trainer's storage at the iterations where `EvalHook` and
`ValidationLoss` (registered before them) have just put it there: every `eval_period`
iterations and after a completed run. A metric is named as it is stored, e.g. "segm/AP",
"bbox/AP" or "val_loss"; `parse_metric("-val_loss")` reads masktron's `TEST.BEST_METRIC`
convention, where a leading "-" means lower is better.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from masktron.checkpoint import Checkpointer
from masktron.engine.train_loop import HookBase

__all__ = ["BestCheckpointer", "EarlyStopping", "is_eval_iteration", "parse_metric"]

logger = logging.getLogger(__name__)


def is_eval_iteration(trainer: Any, period: int, after_train: bool = False) -> bool:
    """Whether evaluation-driven hooks act now: every `period` iterations during training
    (not at the last one) and, in `after_train`, once after a run that was not stopped early."""
    if after_train:
        return trainer.iter + 1 >= trainer.max_iter
    next_iter = trainer.iter + 1
    return period > 0 and next_iter % period == 0 and next_iter != trainer.max_iter


def parse_metric(spec: str) -> tuple[str, str]:
    """`"segm/AP"` -> `("segm/AP", "max")`; `"-val_loss"` -> `("val_loss", "min")`."""
    spec = spec.strip()
    if spec.startswith("-"):
        return spec[1:], "min"
    return spec, "max"


class _MetricHook(HookBase):
    def __init__(self, eval_period: int, metric: str, mode: str):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if not metric:
            raise ValueError("a metric name is needed, e.g. 'segm/AP' or 'val_loss'")
        self._period = int(eval_period)
        self.metric = metric
        self.mode = mode
        self.best_metric: float | None = None
        self.best_iter: int | None = None
        self._warned = False

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.mode == "max" else value < self.best_metric

    def _latest(self) -> float | None:
        latest = self.trainer.storage.latest()
        if self.metric not in latest:
            if not self._warned:
                names = sorted(k for k in latest if "/" in k or k.startswith("val_"))
                logger.warning(
                    "%s: metric %r was not found in the evaluation results; available: %s",
                    type(self).__name__,
                    self.metric,
                    names or "none (is an evaluation configured?)",
                )
                self._warned = True
            return None
        value, itr = latest[self.metric]
        if itr != self.trainer.iter:
            logger.warning(
                "%s: %r was last computed at iteration %d, not at %d; ignored",
                type(self).__name__, self.metric, itr, self.trainer.iter,
            )  # fmt: skip
            return None
        return value

    def _check(self) -> None:
        value = self._latest()
        if value is not None:
            self.on_metric(value)

    def on_metric(self, value: float) -> None:
        raise NotImplementedError

    def after_step(self) -> None:
        if is_eval_iteration(self.trainer, self._period):
            self._check()

    def after_train(self) -> None:
        if is_eval_iteration(self.trainer, self._period, after_train=True):
            self._check()

    def state_dict(self) -> dict[str, Any]:
        if self.best_metric is None:
            return {}
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_metric = state.get("best_metric")
        self.best_iter = state.get("best_iter")


class BestCheckpointer(_MetricHook):
    """Save `<file_prefix>.pth` (atomically) whenever `val_metric` improves.

    The file is a full checkpoint (model, optimizer, scheduler, iteration, generators) plus
    `best_metric`, `best_metric_name` and `iteration`. Every process must run this hook.

    Args:
        eval_period: the `EvalHook`'s period.
        checkpointer: saves the files (only the main process writes).
        val_metric: the stored name, e.g. "segm/AP" or "val_loss".
        mode: "max" (higher is better) or "min".
        file_prefix: file name without ".pth".
    """

    def __init__(
        self,
        eval_period: int,
        checkpointer: Checkpointer,
        val_metric: str,
        mode: str = "max",
        file_prefix: str = "model_best",
    ):
        super().__init__(eval_period, val_metric, mode)
        self._checkpointer = checkpointer
        self._file_prefix = file_prefix

    def on_metric(self, value: float) -> None:
        if not self._improves(value):
            if self.best_metric is None:  # a NaN or infinite first value
                logger.info(
                    "%s = %s at iteration %d is not a finite value; not saved",
                    self.metric, value, self.trainer.iter,
                )  # fmt: skip
                return
            logger.info(
                "%s = %.5g at iteration %d is not better than the best, %.5g at iteration %s",
                self.metric, value, self.trainer.iter, self.best_metric, self.best_iter,
            )  # fmt: skip
            return
        previous = self.best_metric
        self.best_metric, self.best_iter = value, self.trainer.iter
        logger.info(
            "New best %s = %.5g at iteration %d (was %s); saving %s.pth",
            self.metric, value, self.trainer.iter, previous, self._file_prefix,
        )  # fmt: skip
        self.trainer.snapshot_rng_states()
        self._checkpointer.save(
            self._file_prefix,
            iteration=self.trainer.iter,
            best_metric=value,
            best_metric_name=self.metric,
        )


class EarlyStopping(_MetricHook):
    """Stop training when `metric` has not improved for `patience` evaluations in a row.

    Args:
        eval_period: the `EvalHook`'s period.
        metric: the stored name, e.g. "segm/AP" or "val_loss".
        mode: "max" (higher is better) or "min".
        patience: evaluations without improvement before stopping (>= 1).
    """

    def __init__(self, eval_period: int, metric: str, mode: str = "max", patience: int = 5):
        super().__init__(eval_period, metric, mode)
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience = int(patience)
        self.num_bad = 0

    def on_metric(self, value: float) -> None:
        if self._improves(value):
            self.best_metric, self.best_iter, self.num_bad = value, self.trainer.iter, 0
            return
        self.num_bad += 1
        if self.num_bad >= self.patience:
            self.trainer.request_stop(
                f"{self.metric} has not improved for {self.num_bad} evaluations "
                f"(best {self.best_metric} at iteration {self.best_iter})"
            )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if state or self.num_bad:
            state["num_bad"] = self.num_bad
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.num_bad = int(state.get("num_bad", 0))

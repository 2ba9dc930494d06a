"""Hooks that `DefaultTrainer` registers, in this order, and that users may reuse.

`IterationTimer`, `LRScheduler`, `PreciseBN`, `PeriodicCheckpointer`, `ValidationLoss`,
`EvalHook`, `BestCheckpointer`, `EarlyStopping`, `PeriodicWriter`. Detectron2's names and
semantics, plus masktron's validation loss and early stopping. Hooks read and write metrics
through `self.trainer.storage`.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from masktron.checkpoint import Checkpointer
from masktron.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer
from masktron.engine import comm
from masktron.engine.events import EventWriter
from masktron.engine.metric_hooks import BestCheckpointer, EarlyStopping, is_eval_iteration
from masktron.engine.rng import preserve_rng_state
from masktron.engine.train_loop import HookBase

__all__ = [
    "BestCheckpointer",
    "CallbackHook",
    "EarlyStopping",
    "EvalHook",
    "HookBase",
    "IterationTimer",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "PreciseBN",
    "ValidationLoss",
    "flatten_results_dict",
    "is_eval_iteration",
]

logger = logging.getLogger(__name__)


def flatten_results_dict(results: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """`{"bbox": {"AP": 40.2}}` -> `{"bbox/AP": 40.2}` (numbers only; others are dropped)."""
    flat: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_results_dict(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class CallbackHook(HookBase):
    """A hook from functions that take the trainer."""

    def __init__(
        self,
        *,
        before_train: Callable | None = None,
        after_train: Callable | None = None,
        before_step: Callable | None = None,
        after_step: Callable | None = None,
    ):
        self._before_train, self._after_train = before_train, after_train
        self._before_step, self._after_step = before_step, after_step

    def before_train(self) -> None:
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self) -> None:
        if self._after_train:
            self._after_train(self.trainer)

    def before_step(self) -> None:
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self) -> None:
        if self._after_step:
            self._after_step(self.trainer)


class IterationTimer(HookBase):
    """Put the time of each iteration ("time", seconds, hooks included) into the storage and
    log the total at the end. The first `warmup_iter` iterations are not counted."""

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._start = 0.0
        self._counted_time = 0.0
        self._counted = 0

    def before_train(self) -> None:
        self._start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        seconds = time.perf_counter() - self._step_start
        done = self.trainer.iter - self.trainer.start_iter + 1
        if done > self._warmup_iter:
            self.trainer.storage.put_scalars(time=seconds)
            self._counted_time += seconds
            self._counted += 1

    def after_train(self) -> None:
        total = time.perf_counter() - self._start
        if self._counted:
            logger.info(
                "Overall training speed: %d iterations in %s (%.4f s / it)",
                self._counted,
                datetime.timedelta(seconds=int(self._counted_time)),
                self._counted_time / self._counted,
            )
        logger.info("Total training time: %s", datetime.timedelta(seconds=int(total)))


class LRScheduler(HookBase):
    """Record the learning rate ("lr") and step the scheduler after every iteration.

    Args:
        optimizer, scheduler: default the trainer's `optimizer` and `scheduler`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None):
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._group = 0

    @property
    def scheduler(self) -> Any:
        if self._scheduler is not None:
            return self._scheduler
        return self.trainer.scheduler  # type: ignore[attr-defined]

    def before_train(self) -> None:
        optimizer = self._optimizer
        if optimizer is None:
            optimizer = self.trainer.optimizer  # type: ignore[attr-defined]
        self._optimizer = optimizer
        # Report the group with the most parameters (biases may have their own factor).
        sizes = [len(g["params"]) for g in optimizer.param_groups]
        self._group = max(range(len(sizes)), key=lambda i: sizes[i])

    def after_step(self) -> None:
        assert self._optimizer is not None
        lr = self._optimizer.param_groups[self._group]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scheduler.load_state_dict(dict(state))


class PeriodicCheckpointer(HookBase):
    """Save `model_{iter:07d}.pth` every `period` iterations and `model_final.pth` at the end.

    Keeps the newest `max_to_keep` periodic files (None: all). `max_iter` defaults to the
    trainer's. A run stopped early (early stopping) also saves `model_final.pth`. Every process
    must run this hook: the random generator states of all processes are gathered into the
    checkpoint.
    """

    def __init__(
        self,
        checkpointer: Checkpointer,
        period: int,
        max_iter: int | None = None,
        max_to_keep: int | None = None,
        file_prefix: str = "model",
    ):
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_iter = max_iter
        self.max_to_keep = max_to_keep
        self.file_prefix = file_prefix
        self._periodic: _PeriodicCheckpointer | None = None

    def before_train(self) -> None:
        if self.max_iter is None:
            self.max_iter = self.trainer.max_iter
        self._periodic = _PeriodicCheckpointer(
            self.checkpointer,
            self.period,
            max_iter=self.max_iter,
            max_to_keep=self.max_to_keep,
            file_prefix=self.file_prefix,
        )

    def after_step(self) -> None:
        assert self._periodic is not None
        itr = self.trainer.iter
        assert self.max_iter is not None
        if (itr + 1) % self.period == 0 or itr >= self.max_iter - 1:
            self.trainer.snapshot_rng_states()
            self._periodic.step(itr)

    def after_train(self) -> None:
        if getattr(self.trainer, "stop_requested", False):
            self.trainer.snapshot_rng_states()
            self.checkpointer.save(f"{self.file_prefix}_final", iteration=self.trainer.iter)


class EvalHook(HookBase):
    """Run `eval_function()` every `eval_period` iterations and after training.

    Its results (`{task: {metric: value}}`, from the main process) are put into the storage
    flattened ("segm/AP") on every process. Evaluation does not change the random generators
    the training draws from.
    """

    def __init__(self, eval_period: int, eval_function: Callable[[], Any], eval_after_train=True):
        self._period = int(eval_period)
        self._func = eval_function
        self._eval_after_train = eval_after_train
        self._last_eval_iter = -1  # the last iteration whose evaluation completed

    def before_train(self) -> None:
        # Checkpoints at an evaluation iteration are saved before the evaluation runs: resuming
        # from one whose evaluation did not complete (interrupted) runs it first.
        done = self.trainer.start_iter - 1
        if done >= 0 and is_eval_iteration(_AtIteration(self.trainer, done), self._period):
            if self._last_eval_iter < done:
                logger.info("Running the evaluation of iteration %d (it did not complete)", done)
                self._do_eval()

    def state_dict(self) -> dict[str, Any]:
        return {"last_eval_iter": self._last_eval_iter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._last_eval_iter = int(state.get("last_eval_iter", -1))

    def _do_eval(self) -> None:
        with preserve_rng_state():
            results = self._func()
        self._last_eval_iter = self.trainer.iter
        results = comm.broadcast_object(results)
        if results:
            if not isinstance(results, Mapping):
                raise TypeError(f"eval_function should return a dict, got {results!r}")
            flat = flatten_results_dict(results)
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
        comm.synchronize()

    def after_step(self) -> None:
        if is_eval_iteration(self.trainer, self._period):
            self._do_eval()

    def after_train(self) -> None:
        if self._eval_after_train and is_eval_iteration(self.trainer, self._period, True):
            self._do_eval()


class _AtIteration:
    """A trainer's view with another current iteration (for `is_eval_iteration`)."""

    def __init__(self, trainer: Any, iteration: int):
        self.iter, self.max_iter = iteration, trainer.max_iter


class ValidationLoss(HookBase):
    """Put the model's mean losses on a validation set into the storage: "val_loss" (their
    sum) and "val_<name>" for each loss, every `eval_period` iterations and after training.

    The model runs in training mode (it returns losses only then) under `torch.no_grad()`,
    with batch-norm statistics left untouched and the random generators restored afterwards.

    Args:
        eval_period: iterations between measurements.
        model: the model (unwrapped from DistributedDataParallel).
        data_loader: yields batches with ground truth (this process's share of the set).
    """

    def __init__(self, eval_period: int, model: nn.Module, data_loader: Iterable):
        self._period = int(eval_period)
        self._model = model
        self._loader = data_loader

    def _measure(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        count = 0
        norms = [m for m in self._model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
        modes = [m.training for m in norms]
        try:
            for m in norms:
                m.eval()
            with preserve_rng_state(), torch.no_grad():
                for batch in self._loader:
                    for name, value in self._model(batch).items():
                        totals[name] += float(value) * len(batch)
                    count += len(batch)
        finally:
            for m, mode in zip(norms, modes):
                m.train(mode)
        gathered = comm.all_gather((dict(totals), count))
        count = sum(c for _, c in gathered)
        if count == 0:
            raise ValueError("ValidationLoss: the validation loader yielded no images")
        names = sorted({k for t, _ in gathered for k in t})
        return {k: sum(t.get(k, 0.0) for t, _ in gathered) / count for k in names}

    def _do(self) -> None:
        means = self._measure()
        total = sum(means.values())
        scalars = {"val_loss": total, **{f"val_{k}": v for k, v in means.items()}}
        self.trainer.storage.put_scalars(**scalars, smoothing_hint=False)
        logger.info("Validation loss at iteration %d: %.4f", self.trainer.iter, total)

    def after_step(self) -> None:
        if is_eval_iteration(self.trainer, self._period):
            self._do()

    def after_train(self) -> None:
        if is_eval_iteration(self.trainer, self._period, True):
            self._do()


class PreciseBN(HookBase):
    """Recompute batch-norm running statistics as plain averages over `num_iter` training
    batches, every `period` iterations and at the last one (Detectron2's PreciseBN).

    With momentum 1 each forward sets the statistics to the batch's; their mean over the
    batches replaces the exponential average that training keeps. The random generators are
    left as they were. Disabled (with a log line) when the model has no trainable batch norm.

    Args:
        period: iterations between updates (<= 0: only at the last iteration).
        model: the model (unwrapped from DistributedDataParallel), in training mode.
        data_loader: an iterable of training batches (its own iterator, kept between updates).
        num_iter: batches per update.
    """

    def __init__(self, period: int, model: nn.Module, data_loader: Iterable, num_iter: int):
        self._period = int(period)
        self._model = model
        self._loader = data_loader
        self._num_iter = int(num_iter)
        self._data_iter: Any = None
        self._bn = [
            m
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.training
            and m.track_running_stats
        ]
        if not self._bn:
            logger.info("PreciseBN is disabled: the model has no batch norm in training mode")

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        last = next_iter == self.trainer.max_iter
        if self._bn and (last or (self._period > 0 and next_iter % self._period == 0)):
            self.update_stats()

    def update_stats(self) -> None:
        if self._data_iter is None:
            self._data_iter = iter(self._loader)
        momenta = [bn.momentum for bn in self._bn]
        stats = [(bn.running_mean, bn.running_var) for bn in self._bn]
        means = [torch.zeros_like(mean) for mean, _ in stats]  # type: ignore[arg-type]
        variances = [torch.zeros_like(var) for _, var in stats]  # type: ignore[arg-type]
        logger.info("Running PreciseBN over %d batches", self._num_iter)
        try:
            for bn in self._bn:
                bn.momentum = 1.0
            with preserve_rng_state(), torch.no_grad():
                for k in range(self._num_iter):
                    self._model(next(self._data_iter))
                    for (running_mean, running_var), mean, var in zip(stats, means, variances):
                        mean += (running_mean - mean) / (k + 1)  # type: ignore[operator]
                        var += (running_var - var) / (k + 1)  # type: ignore[operator]
        finally:
            for bn, momentum in zip(self._bn, momenta):
                bn.momentum = momentum
        for (running_mean, running_var), mean, var in zip(stats, means, variances):
            running_mean.copy_(mean)  # type: ignore[union-attr]
            running_var.copy_(var)  # type: ignore[union-attr]


class PeriodicWriter(HookBase):
    """Call `writer.write(storage)` every `period` iterations, at the last one and at the end.

    Args:
        writers: e.g. `CommonMetricPrinter`, `JSONWriter`, `TensorboardXWriter`.
        period: iterations between writes.
    """

    def __init__(self, writers: Sequence[EventWriter], period: int = 20):
        for w in writers:
            if not isinstance(w, EventWriter):
                raise TypeError(f"writers must be EventWriter instances, got {type(w).__name__}")
        self._writers = list(writers)
        self._period = int(period)

    def before_train(self) -> None:
        for writer in self._writers:
            writer.on_train_start(self.trainer.start_iter)

    def after_step(self) -> None:
        itr = self.trainer.iter
        for writer in self._writers:
            writer.on_step(self.trainer.storage)
        if (itr + 1) % self._period == 0 or itr == self.trainer.max_iter - 1:
            self._write()

    def _write(self) -> None:
        for writer in self._writers:
            writer.write(self.trainer.storage)

    def after_train(self) -> None:
        self._write()
        for writer in self._writers:
            writer.close()

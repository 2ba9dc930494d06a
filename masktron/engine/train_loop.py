"""The training loop: `TrainerBase` (iterations and hooks), `SimpleTrainer` and `AMPTrainer`.

One iteration of `SimpleTrainer`: take the next batch, `loss_dict = model(batch)`, sum the
losses, check they are finite (on every process), backward, clip gradients if asked, step the
optimizer. Everything else -- learning-rate schedule, checkpoints, evaluation, logging -- is a
hook (`masktron.engine.hooks`). The trainer owns the run's `EventStorage` (`trainer.storage`)
and passes it to hooks; models never see it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from masktron.engine import comm
from masktron.engine.events import EventStorage
from masktron.engine.rng import get_rng_state, set_rng_state

__all__ = ["AMPTrainer", "HookBase", "SimpleTrainer", "TrainerBase"]

logger = logging.getLogger(__name__)

GradClipper = Callable[[Iterable[torch.Tensor]], None]


class HookBase:
    """Something done around training iterations; see `TrainerBase.train` for the order.

    `self.trainer` is set by `TrainerBase.register_hooks` (a weak proxy of the trainer).
    A hook with state to resume (a best value, a counter) returns it from `state_dict`; it is
    saved in checkpoints under the hook's class name.
    """

    trainer: TrainerBase

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class TrainerBase:
    """Iterations from `start_iter` to `max_iter - 1`, with hooks called around each.

    Attributes:
        iter: the current iteration; `max_iter` after a completed run.
        start_iter, max_iter: the range of the run.
        storage: the run's `EventStorage`, created by `train`.
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage = EventStorage(0)
        self._stop_reason: str | None = None
        self._rng_snapshot: tuple[int, list[dict[str, Any]]] | None = None
        self._pending_rng: dict[str, Any] | None = None

    def register_hooks(self, hooks: Sequence[HookBase | None]) -> None:
        """Add hooks (None entries are skipped); they run in the order registered."""
        for h in hooks:
            if h is None:
                continue
            if not isinstance(h, HookBase):
                raise TypeError(f"hooks must be HookBase instances, got {type(h).__name__}")
            # A proxy avoids a reference cycle (trainer -> hook -> trainer).
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def request_stop(self, reason: str) -> None:
        """Finish training after the current iteration (its `after_step` hooks still run)."""
        logger.info("Stopping training after iteration %d: %s", self.iter, reason)
        self._stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        return self._stop_reason is not None

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations `start_iter .. max_iter - 1`, unless a hook requests a stop."""
        logger.info("Starting training from iteration %d", start_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.storage = EventStorage(start_iter)
        self._stop_reason = None
        # Entered so that ported Detectron2 code calling get_event_storage() finds it.
        with self.storage:
            self._train_loop(start_iter, max_iter)

    def _train_loop(self, start_iter: int, max_iter: int) -> None:
        try:
            self.before_train()
            self.prepare_data()
            if self._pending_rng is not None:  # resuming: continue the interrupted random streams
                set_rng_state(self._pending_rng)
                self._pending_rng = None
            for self.iter in range(start_iter, max_iter):
                self.before_step()
                self.run_step()
                self.after_step()
                if self.stop_requested:
                    break
            else:
                # iter == max_iter tells after_train hooks that the run completed.
                self.iter = max(max_iter, start_iter)
        except Exception:
            logger.exception("Exception during training:")
            raise
        finally:
            self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def run_step(self) -> None:
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Called after `before_train`, before the random generators are restored on resume:
        create data iterators here if creating them draws random numbers."""

    def snapshot_rng_states(self) -> None:
        """Gather every process's generator states for the next `state_dict` (collective: call
        it on all processes, as the checkpoint hooks do before saving)."""
        self._rng_snapshot = (self.iter, comm.all_gather(get_rng_state()))

    def _rng_states(self) -> list[dict[str, Any]] | None:
        if self._rng_snapshot is not None and self._rng_snapshot[0] == self.iter:
            return self._rng_snapshot[1]
        if comm.get_world_size() == 1:
            return [get_rng_state()]
        logger.warning("Saving without the generator states: snapshot_rng_states() was not called")
        return None

    def state_dict(self) -> dict[str, Any]:
        """The run's state: iteration, hook states and (per process) random generator states."""
        hooks = {}
        for h in self._hooks:
            state = h.state_dict()
            if state:
                hooks[type(h).__qualname__] = state
        state = {"iteration": self.iter, "hooks": hooks}
        rng = self._rng_states()
        if rng is not None:
            state["rng"] = rng
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`; the generator states are applied when `train` starts."""
        self.iter = int(state["iteration"])
        rng = state.get("rng")
        if rng:
            if len(rng) != comm.get_world_size():
                logger.warning(
                    "The checkpoint was written by %d processes, this run has %d: random "
                    "numbers will differ from the interrupted run",
                    len(rng),
                    comm.get_world_size(),
                )
            self._pending_rng = rng[comm.get_rank() % len(rng)]
        for name, value in state.get("hooks", {}).items():
            matching = [h for h in self._hooks if type(h).__qualname__ == name]
            if not matching:
                logger.warning("The checkpoint has a state for hook %s, which is not used", name)
            for h in matching:
                h.load_state_dict(value)


class SimpleTrainer(TrainerBase):
    """Single-precision training: one batch, one forward, one backward, one optimizer step.

    Args:
        model: in training mode, `model(batch)` returns a dict of scalar losses (or one loss).
        data_loader: an iterable of batches (iterated from the first `run_step`).
        optimizer: steps the model's parameters.
        grad_clipper: called on the optimizer's parameters after backward (see
            `masktron.solver.build_gradient_clipper`).
        gather_metric_period: record the losses (gathered from every process) every this many
            iterations (Detectron2's argument; the NaN check runs on those iterations too).
        zero_grad_before_forward: clear the gradients before the forward instead of after it.
        async_write_metrics: record the losses in a background thread (errors it raises, such
            as a NaN loss, surface at the next iteration or at the end of training).
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        grad_clipper: GradClipper | None = None,
        gather_metric_period: int = 1,
        zero_grad_before_forward: bool = False,
        async_write_metrics: bool = False,
    ):
        super().__init__()
        if gather_metric_period < 1:
            raise ValueError(f"gather_metric_period must be >= 1, got {gather_metric_period}")
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.grad_clipper = grad_clipper
        self.gather_metric_period = gather_metric_period
        self.zero_grad_before_forward = zero_grad_before_forward
        self.async_write_metrics = async_write_metrics
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending_write: concurrent.futures.Future | None = None
        self._data_iter: Iterator | None = None

    @property
    def data_iter(self) -> Iterator:
        """The iterator over `data_loader`, created when first needed."""
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)
        return self._data_iter

    def prepare_data(self) -> None:
        _ = self.data_iter

    def reset_data_loader(self, data_loader: Iterable | Callable[[], Iterable]) -> None:
        """Replace the loader (e.g. one rebuilt to resume at a later iteration).

        Args:
            data_loader: the new loader, or (Detectron2's form) a function without arguments
                that builds it; the old loader is dropped first, so its workers can exit.
        """
        self.data_loader = None  # type: ignore[assignment]
        self._data_iter = None
        if callable(data_loader) and not hasattr(data_loader, "__iter__"):
            data_loader = data_loader()
        self.data_loader = data_loader

    def _record_metrics(self, loss_dict: Any, data_time: float) -> None:
        """`write_metrics` on the gather iterations, in the background if asked."""
        if (self.iter + 1) % self.gather_metric_period != 0:
            return
        if not self.async_write_metrics:
            self.write_metrics(loss_dict, data_time)
            return
        self._wait_for_metrics()
        if isinstance(loss_dict, Mapping):
            loss_dict = {k: v.detach() for k, v in loss_dict.items()}
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending_write = self._executor.submit(
            self.write_metrics, loss_dict, data_time, cur_iter=self.iter
        )

    def _wait_for_metrics(self) -> None:
        pending, self._pending_write = self._pending_write, None
        if pending is not None:
            pending.result()  # re-raises what the background write raised

    def after_train(self) -> None:
        try:
            self._wait_for_metrics()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            super().after_train()

    @staticmethod
    def _sum_losses(loss_dict: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(loss_dict, torch.Tensor):
            return loss_dict
        if not isinstance(loss_dict, Mapping) or not loss_dict:
            raise TypeError(
                "in training mode the model must return a non-empty dict of losses, got "
                f"{type(loss_dict).__name__}"
            )
        return sum(loss_dict.values())  # type: ignore[return-value]

    def _next_batch(self) -> tuple[Any, float]:
        start = time.perf_counter()
        batch = next(self.data_iter)
        return batch, time.perf_counter() - start

    def _clip(self) -> None:
        if self.grad_clipper is not None:
            self.grad_clipper([p for g in self.optimizer.param_groups for p in g["params"]])

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("SimpleTrainer: the model was switched to eval mode")
        batch, data_time = self._next_batch()
        if self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        loss_dict = self.model(batch)
        losses = self._sum_losses(loss_dict)
        self._record_metrics(loss_dict, data_time)
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        losses.backward()
        self.after_backward()
        self._clip()
        self.optimizer.step()

    def write_metrics(
        self,
        loss_dict: Mapping[str, torch.Tensor] | torch.Tensor,
        data_time: float,
        cur_iter: int | None = None,
    ):
        """Record the losses (averaged over processes) and return their sum for backward.

        Raises:
            FloatingPointError: the summed loss is NaN or infinite on any process; the message
                names the iteration and each process's losses.
        """
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        if not isinstance(loss_dict, Mapping) or not loss_dict:
            raise TypeError(
                "in training mode the model must return a non-empty dict of losses, got "
                f"{type(loss_dict).__name__}"
            )
        losses = sum(loss_dict.values())
        at = self.iter if cur_iter is None else cur_iter
        local = {k: float(v.detach().float().cpu()) for k, v in loss_dict.items()}
        all_metrics = comm.all_gather({"losses": local, "data_time": data_time})
        totals = [sum(m["losses"].values()) for m in all_metrics]
        if not all(math.isfinite(t) for t in totals):
            per_rank = "\n".join(f"  process {r}: {m['losses']}" for r, m in enumerate(all_metrics))
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration {at}; losses:\n{per_rank}\n"
                "Try a lower SOLVER.BASE_LR, a longer warmup or SOLVER.CLIP_GRADIENTS."
            )
        names = list(local)
        mean = {k: sum(m["losses"][k] for m in all_metrics) / len(all_metrics) for k in names}
        self.storage.put_scalar("data_time", max(m["data_time"] for m in all_metrics), cur_iter=at)
        if len(mean) > 1 or "total_loss" not in mean:
            self.storage.put_scalar("total_loss", sum(mean.values()), cur_iter=at)
        self.storage.put_scalars(cur_iter=at, **mean)
        return losses

    def solver_state_dict(self) -> dict[str, Any]:
        """The optimizer's state (and the AMP scaler's)."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_solver_state_dict(self, state: Mapping[str, Any]) -> None:
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.solver_state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.load_solver_state_dict(state)


class AMPTrainer(SimpleTrainer):
    """`SimpleTrainer` with automatic mixed precision (`torch.autocast`).

    On CUDA the forward runs in float16 and a `GradScaler` scales the loss; on CPU it runs in
    bfloat16 without scaling (bfloat16 has float32's range). Gradients are unscaled before
    clipping, so `SOLVER.CLIP_GRADIENTS` means the same with and without AMP.

    Args:
        precision: the autocast dtype; default float16 on CUDA, bfloat16 on CPU.
        grad_scaler: default a `torch.amp.GradScaler`, enabled for float16 only.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        grad_clipper: GradClipper | None = None,
        precision: torch.dtype | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
    ):
        super().__init__(model, data_loader, optimizer, grad_clipper=grad_clipper)
        param = next(model.parameters(), None)
        self.device_type = param.device.type if param is not None else "cpu"
        if precision is None:
            precision = torch.float16 if self.device_type == "cuda" else torch.bfloat16
        self.precision = precision
        if grad_scaler is None:
            grad_scaler = torch.amp.GradScaler(self.device_type, enabled=precision == torch.float16)
        self.grad_scaler = grad_scaler

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("AMPTrainer: the model was switched to eval mode")
        batch, data_time = self._next_batch()
        if self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=self.precision):
            loss_dict = self.model(batch)
        losses = self._sum_losses(loss_dict)
        self._record_metrics(loss_dict, data_time)
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(losses).backward()
        self.after_backward()
        if self.grad_clipper is not None:
            self.grad_scaler.unscale_(self.optimizer)
            self._clip()
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def solver_state_dict(self) -> dict[str, Any]:
        return {**super().solver_state_dict(), "grad_scaler": self.grad_scaler.state_dict()}

    def load_solver_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_solver_state_dict(state)
        if "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

"""Save a checkpoint when a training run is interrupted (Ctrl-C / SIGINT, SIGTERM).

The first signal asks the run to stop after the current iteration (and its evaluation, if
one is running): `InterruptCheckpointer` then saves `model_<iter>.pth`, tags it as the last
checkpoint, and raises `TrainingInterrupted`, so `--resume` continues from there. A second
signal stops at once (no checkpoint). Handlers are installed only in a one-process run, from
the main thread; several processes stop by the default handlers (their last periodic
checkpoint is what `--resume` finds).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from masktron.engine import comm
from masktron.engine.train_loop import HookBase

__all__ = ["InterruptCheckpointer", "TrainingInterrupted"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal.

    Attributes:
        signum: the signal's number (exit code 128 + signum, as shells report it).
        checkpoint: the checkpoint saved on the way out ("" if none).
        iteration: the last iteration completed (-1 if unknown).
    """

    def __init__(self, signum: int, checkpoint: str = "", iteration: int = -1):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.checkpoint = checkpoint
        self.iteration = iteration

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class InterruptCheckpointer(HookBase):
    """On SIGINT/SIGTERM, finish the iteration, save a checkpoint and stop the run.

    Args:
        checkpointer: saves the model and the trainer's state (`DetectionCheckpointer`).
        file_prefix: checkpoint name prefix (`<prefix>_<iter:07d>.pth`).
    """

    def __init__(self, checkpointer: Any, file_prefix: str = "model"):
        self.checkpointer = checkpointer
        self.file_prefix = file_prefix
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: stop now
            raise TrainingInterrupted(signum)
        self.signum = signum
        logger.warning(
            "%s received: saving a checkpoint after this iteration (send it again to quit now)",
            signal.Signals(signum).name,
        )

    def before_train(self) -> None:
        self.signum = None
        if comm.get_world_size() > 1 or threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def after_step(self) -> None:
        if self.signum is None:
            return
        itr = self.trainer.iter
        self.trainer.snapshot_rng_states()
        name = f"{self.file_prefix}_{itr:07d}"
        self.checkpointer.save(name, iteration=itr)
        path = self.checkpointer.get_checkpoint_file()
        logger.warning("Saved %s at iteration %d; continue with --resume", path, itr)
        raise TrainingInterrupted(self.signum, path, itr)

    def after_train(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

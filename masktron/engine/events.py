"""Training metrics: `EventStorage` (owned by the trainer) and the writers that report it.

The trainer creates one `EventStorage` and hands it to hooks and writers (`trainer.storage`);
models never see it and there is no global storage. Writers (`CommonMetricPrinter`,
`JSONWriter`, `TensorboardXWriter`) read the latest values from the storage when the
`PeriodicWriter` hook asks them to.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from masktron.utils.file_io import atomic_open

__all__ = [
    "CommonMetricPrinter",
    "EventStorage",
    "EventWriter",
    "HistoryBuffer",
    "JSONWriter",
    "TensorboardXWriter",
    "get_event_storage",
    "has_event_storage",
]

logger = logging.getLogger(__name__)


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class HistoryBuffer:
    """The (value, iteration) pairs of one scalar, with windowed statistics.

    Args:
        max_length: pairs kept; older ones are dropped (their values still count in
            `global_avg`).
    """

    def __init__(self, max_length: int = 1_000_000):
        self._max_length = max_length
        self._data: list[tuple[float, float]] = []
        self._count = 0
        self._global_avg = 0.0

    def update(self, value: float, iteration: float | None = None) -> None:
        if iteration is None:
            iteration = self._count
        if len(self._data) == self._max_length:
            self._data.pop(0)
        self._data.append((float(value), float(iteration)))
        self._count += 1
        self._global_avg += (float(value) - self._global_avg) / self._count

    def latest(self) -> float:
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        return float(np.median([v for v, _ in self._data[-window_size:]]))

    def avg(self, window_size: int) -> float:
        return float(np.mean([v for v, _ in self._data[-window_size:]]))

    def global_avg(self) -> float:
        return self._global_avg

    def values(self) -> list[tuple[float, float]]:
        return list(self._data)


# Storages entered with `with EventStorage(...)`, innermost last (Detectron2's global stack).
_STORAGE_STACK: list[EventStorage] = []


def get_event_storage() -> EventStorage:
    """The innermost `EventStorage` entered with `with`.

    Raises:
        AssertionError: outside any `with EventStorage(...)` block (as in Detectron2).
    """
    assert _STORAGE_STACK, "get_event_storage() must be called inside 'with EventStorage(...)'"
    return _STORAGE_STACK[-1]


def has_event_storage() -> bool:
    """Whether some `with EventStorage(...)` block is active."""
    return bool(_STORAGE_STACK)


class EventStorage:
    """Named scalar histories for one training run, indexed by iteration.

    masktron's trainer hands its storage to hooks explicitly; Detectron2 code that calls
    `get_event_storage()` works inside `with EventStorage(...) as storage:` (the trainer's
    `train()` enters its storage that way too).

    Args:
        start_iter: the iteration the run starts at (the trainer keeps `iter` up to date).
    """

    def __init__(self, start_iter: int = 0):
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self.iter = start_iter
        self._vis_data: list[tuple[str, Any, int]] = []
        self._current_prefix = ""

    def __enter__(self) -> EventStorage:
        _STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if _STORAGE_STACK and _STORAGE_STACK[-1] is self:
            _STORAGE_STACK.pop()

    @property
    def iteration(self) -> int:
        return self.iter

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.iter = int(value)

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Prefix the names of scalars put inside the block with `name/`."""
        old = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old

    def put_image(self, img_name: str, img_tensor: Any) -> None:
        """Keep an image (C, H, W, values in [0, 1]) for writers until `clear_images`."""
        self._vis_data.append((img_name, img_tensor, self.iter))

    def clear_images(self) -> None:
        self._vis_data = []

    def put_scalar(
        self, name: str, value: float | torch.Tensor, smoothing_hint: bool = True, cur_iter=None
    ) -> None:
        """Record `value` for `name` at the current (or the given) iteration.

        Args:
            smoothing_hint: whether writers should report a windowed median (losses) rather than
                the last value (learning rate, evaluation results).
        """
        cur_iter = self.iter if cur_iter is None else int(cur_iter)
        name = self._current_prefix + name
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        existing = self._smoothing_hints.get(name)
        if existing is not None and existing != smoothing_hint:
            raise ValueError(f"scalar {name!r} was put with a different smoothing_hint before")
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter=None, **kwargs: Any) -> None:
        for name, value in kwargs.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"no history for {name!r}; recorded: {sorted(self._history)}")
        return self._history[name]

    def histories(self) -> dict[str, HistoryBuffer]:
        return dict(self._history)

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (latest value, its iteration)."""
        return dict(self._latest_scalars)

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like `latest`, with smoothed scalars replaced by their median over the window."""
        result = {}
        for name, (value, itr) in self._latest_scalars.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(window_size)
            result[name] = (value, itr)
        return result

    def smoothing_hints(self) -> dict[str, bool]:
        return dict(self._smoothing_hints)

    def step(self) -> None:
        self.iter += 1


class EventWriter:
    """Reports what an `EventStorage` holds."""

    def on_train_start(self, start_iter: int) -> None:
        """Called before the first iteration (`start_iter` > 0 when a run resumes)."""

    def on_step(self, storage: EventStorage) -> None:
        """Called after every iteration (e.g. to move a progress bar); `write` is periodic."""

    def write(self, storage: EventStorage) -> None:
        """Report `storage` (masktron's writers also take no argument, as Detectron2's do, and
        then report the storage of the active `with EventStorage()` block)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Append one JSON object per iteration with new scalars to `json_file` (JSON lines).

    Each line is `{"iteration": i, "<name>": value, ...}`, smoothed scalars as their window
    median. When a run resumes at iteration i, the lines of iterations >= i left by the
    interrupted run are dropped (the file is rewritten atomically), so each iteration appears
    once.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        self._path = json_file
        self._window_size = window_size
        self._last_write = -1

    def on_train_start(self, start_iter: int) -> None:
        if start_iter > 0:
            self.truncate_after(start_iter - 1)

    def truncate_after(self, iteration: int) -> None:
        """Drop the lines of iterations after `iteration`."""
        if not os.path.isfile(self._path):
            return
        with open(self._path, encoding="utf-8") as f:
            lines = f.readlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if isinstance(record, dict) and int(record.get("iteration", -1)) <= iteration:
                kept.append(line if line.endswith("\n") else line + "\n")
        if len(kept) != len(lines):
            with atomic_open(self._path, "w") as f:
                f.writelines(kept)
        self._last_write = iteration

    def write(self, storage: EventStorage | None = None) -> None:
        storage = storage if storage is not None else get_event_storage()
        by_iter: dict[int, dict[str, float]] = defaultdict(dict)
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                by_iter[itr][name] = value
        if not by_iter:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
        with open(self._path, "a", encoding="utf-8") as f:
            for itr in sorted(by_iter):
                f.write(json.dumps({"iteration": itr, **by_iter[itr]}) + "\n")
            f.flush()
        self._last_write = max(by_iter)


class TensorboardXWriter(EventWriter):
    """Scalars to TensorBoard event files in `log_dir` (needs the `tensorboard` package).

    As in Detectron2, the event file is created by the first `write`, so a writer that never
    writes leaves `log_dir` untouched. Without tensorboard a warning is logged once and `write`
    does nothing.
    """

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs: Any):
        self._window_size = window_size
        self._last_write = -1
        self._summary_writer: Any = None
        self._log_dir = log_dir
        self._writer_kwargs = kwargs
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning(
                "tensorboard is not installed: no TensorBoard events are written "
                "(pip install tensorboard)"
            )
            self._summary_writer_class: Any = None
            return
        self._summary_writer_class = SummaryWriter

    @property
    def enabled(self) -> bool:
        return self._summary_writer_class is not None

    @property
    def _writer(self) -> Any:
        """The SummaryWriter, created (with its event file) on first use."""
        if self._summary_writer is None and self._summary_writer_class is not None:
            self._summary_writer = self._summary_writer_class(self._log_dir, **self._writer_kwargs)
        return self._summary_writer

    def write(self, storage: EventStorage | None = None) -> None:
        storage = storage if storage is not None else get_event_storage()
        if self._summary_writer_class is None:
            return
        new_last = self._last_write
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                self._writer.add_scalar(name, value, itr)
                new_last = max(new_last, itr)
        if self._summary_writer is not None:
            self._summary_writer.flush()
        self._last_write = new_last

    def close(self) -> None:
        if self._summary_writer is not None:
            self._summary_writer.close()


class CommonMetricPrinter(EventWriter):
    """A tqdm progress bar over the iterations (with ETA) and a log line per write.

    The bar moves every iteration and shows the smoothed total loss and the learning rate;
    the log line (INFO, on `self.logger`: logger "masktron.utils.events", the name Detectron2's
    users know as "detectron2.utils.events") has Detectron2's fields: eta, iter,
    losses, time, data_time, lr and, on CUDA, max memory.

    Args:
        max_iter: the run's last iteration + 1 (for the bar and the ETA); None (Detectron2's
            default): no bar and no ETA.
        window_size: iterations over which losses are smoothed (median).
        progress: show the bar (the log line is written either way); default: when stderr is
            a terminal (redirected to a file, the log lines alone report progress).
    """

    def __init__(
        self, max_iter: int | None = None, window_size: int = 20, progress: bool | None = None
    ):
        self.logger = logging.getLogger("masktron.utils.events")
        self._last_write: tuple[int, float] | None = None  # (iteration, time) for the ETA
        self._max_iter = max_iter
        self._window_size = window_size
        progress = _stderr_is_terminal() if progress is None else progress
        self._progress = progress and max_iter is not None
        self._bar: tqdm | None = None

    def _eta(self, storage: EventStorage) -> str:
        """From the median iteration "time" when the trainer records it; else, as Detectron2,
        from the wall time between this write and the previous one ("" at the first)."""
        if self._max_iter is None:
            return ""
        remaining_iters = self._max_iter - storage.iter - 1
        try:
            seconds_per_iter = storage.history("time").median(1000)
        except KeyError:
            now = time.perf_counter()
            last, self._last_write = self._last_write, (storage.iter, now)
            if last is None or storage.iter <= last[0]:
                return ""
            seconds_per_iter = (now - last[1]) / (storage.iter - last[0])
        return str(datetime.timedelta(seconds=int(seconds_per_iter * remaining_iters)))

    def _losses(self, storage: EventStorage, names: Any) -> dict[str, float]:
        hints = storage.smoothing_hints()
        return {
            k: storage.history(k).median(self._window_size)
            for k in names
            if "loss" in k and not k.startswith("val_") and hints.get(k)
        }

    def on_step(self, storage: EventStorage) -> None:
        if not self._progress or self._max_iter is None or storage.iter >= self._max_iter:
            return
        latest = storage.latest()
        names = ["total_loss"] if "total_loss" in latest else list(latest)
        lr = latest["lr"][0] if "lr" in latest else None
        self._update_bar(storage.iter, self._losses(storage, names), lr)

    def write(self, storage: EventStorage | None = None) -> None:
        storage = storage if storage is not None else get_event_storage()
        itr = storage.iter
        if self._max_iter is not None and itr >= self._max_iter:  # e.g. evaluation results
            return
        latest = storage.latest()
        losses = self._losses(storage, latest)
        lr = latest["lr"][0] if "lr" in latest else None
        self._update_bar(itr, losses, lr)
        eta = self._eta(storage)
        fields = ([f"eta: {eta}"] if eta else []) + [f"iter: {itr}"]
        fields += [f"{k}: {v:.4g}" for k, v in losses.items()]
        for key in ("time", "data_time"):
            if key in latest:
                fields.append(f"{key}: {storage.history(key).avg(self._window_size):.4f}")
        if lr is not None:
            fields.append(f"lr: {lr:.5g}")
        if torch.cuda.is_available():
            fields.append(f"max_mem: {torch.cuda.max_memory_allocated() / 1024**2:.0f}M")
        self.logger.info("  ".join(fields))

    def on_train_start(self, start_iter: int) -> None:
        if self._progress and self._bar is None:
            self._bar = tqdm(
                total=self._max_iter,
                initial=start_iter,
                desc="train",
                unit="it",
                dynamic_ncols=True,
            )

    def _update_bar(self, itr: int, losses: dict[str, float], lr: float | None) -> None:
        if not self._progress:
            return
        if self._bar is None:
            self.on_train_start(itr)
        assert self._bar is not None
        postfix = {}
        if "total_loss" in losses:
            postfix["loss"] = f"{losses['total_loss']:.4g}"
        if lr is not None:
            postfix["lr"] = f"{lr:.3g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(itr + 1 - self._bar.n)  # redraws at most every tqdm mininterval

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

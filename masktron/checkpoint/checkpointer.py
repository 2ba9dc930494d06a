"""Saving and loading a model with its training state: `Checkpointer` and `PeriodicCheckpointer`.

The API is fvcore's/Detectron2's (`save`, `load`, `resume_or_load`, `has_checkpoint`, ...), with
these guarantees:

- every file is written atomically (temporary file in the same folder + `os.replace`), so a crash
  while saving leaves the previous checkpoint and the `last_checkpoint` tag intact;
- saved files hold only tensors, numbers, strings and containers, so they load with
  `torch.load(weights_only=True)`; anything else is refused when saving, not when resuming;
- files are read with restricted unpicklers only (see `safe_pickle`).

`DetectionCheckpointer` (in `detection_checkpoint`) adds Detectron2/Caffe2/torchvision formats.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from masktron.checkpoint.cache_check import move_aside
from masktron.checkpoint.download import get_local_path, resolve_url
from masktron.checkpoint.loading import load_exact, log_incompatible_keys, to_tensors
from masktron.checkpoint.matching import IncompatibleKeys
from masktron.checkpoint.safe_pickle import CheckpointError, load_torch
from masktron.checkpoint.weights_only import check_weights_only
from masktron.utils.file_io import atomic_open

__all__ = ["Checkpointer", "PeriodicCheckpointer"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"
# atomic_open's temporary files: ".<name>.<random>.tmp" beside the checkpoint or the tag.
_TEMP_FILE = re.compile(r"^\.(.+\.pth|last_checkpoint)\.[^.]+\.tmp$")


def remove_stale_temp_files(save_dir: str) -> list[str]:
    """Delete the temporary files a killed save left in `save_dir` (never a finished file).

    Returns:
        The paths removed.
    """
    if not os.path.isdir(save_dir):
        return []
    removed = []
    for name in sorted(os.listdir(save_dir)):
        path = os.path.join(save_dir, name)
        if _TEMP_FILE.match(name) and os.path.isfile(path):
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
    if removed:
        logger.info("Removed %d unfinished checkpoint file(s) of an interrupted save", len(removed))
    return removed


def _default_save_to_disk() -> bool:
    """Only the main process writes when torch.distributed is running (as in Detectron2)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Checkpointer:
    """Save and load a model together with other objects that have `state_dict()`.

    Args:
        model: the model; a `DistributedDataParallel`/`DataParallel` wrapper is unwrapped, so
            names never carry "module.".
        save_dir: folder for saved checkpoints and the `last_checkpoint` tag ("" disables saving).
        save_to_disk: whether `save` writes; None (default) means "only on rank 0".
        **checkpointables: objects saved and restored with the model, e.g.
            `optimizer=optimizer, scheduler=scheduler`.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        save_to_disk: bool | None = None,
        **checkpointables: Any,
    ):
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
        self.model = model
        self.save_dir = save_dir
        self.save_to_disk = _default_save_to_disk() if save_to_disk is None else save_to_disk
        self.checkpointables: dict[str, Any] = dict(checkpointables)
        self.logger = logging.getLogger(__name__)
        # Detectron2's hook for custom storage: an object with `get_local_path(path)` (e.g. an
        # iopath `PathManager` with handlers) that resolves paths which are not local files.
        # None: URLs are downloaded into masktron's cache.
        self.path_manager: Any = None
        if self.save_dir and self.save_to_disk:
            remove_stale_temp_files(self.save_dir)

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **extra: Any) -> str | None:
        """Write `<save_dir>/<name>.pth` atomically and tag it as the last checkpoint.

        Args:
            name: file name without ".pth", e.g. "model_0004999".
            **extra: more entries to store, e.g. `iteration=4999` (numbers, strings, tensors and
                containers of them).

        Returns:
            The path written, or None when this process does not save.

        Raises:
            TypeError: an entry is not loadable with `weights_only=True` (named in the message).
        """
        if not self.save_dir or not self.save_to_disk:
            return None
        data: dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(extra)
        check_weights_only(data)
        basename = f"{name}.pth"
        if os.path.basename(basename) != basename:
            raise ValueError(f"checkpoint name must not contain a folder: {name!r}")
        path = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", path)
        with atomic_open(path, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)
        return path

    def tag_last_checkpoint(self, basename: str) -> None:
        """Atomically record `basename` in `<save_dir>/last_checkpoint`."""
        with atomic_open(os.path.join(self.save_dir, LAST_CHECKPOINT), "w") as f:
            f.write(basename)

    # ------------------------------------------------------------------ finding
    def has_checkpoint(self) -> bool:
        """Whether `save_dir` has a `last_checkpoint` tag."""
        return bool(self.save_dir) and os.path.isfile(os.path.join(self.save_dir, LAST_CHECKPOINT))

    def get_checkpoint_file(self) -> str:
        """The path the `last_checkpoint` tag names, or "" without a tag."""
        try:
            with open(os.path.join(self.save_dir, LAST_CHECKPOINT), encoding="utf-8") as f:
                last = f.read().strip()
        except OSError:
            return ""
        return os.path.join(self.save_dir, last) if last else ""

    def get_all_checkpoint_files(self) -> list[str]:
        """All `.pth` files in `save_dir`, sorted by name."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        return [
            os.path.join(self.save_dir, f)
            for f in sorted(os.listdir(self.save_dir))
            if f.endswith(".pth") and os.path.isfile(os.path.join(self.save_dir, f))
        ]

    # ------------------------------------------------------------------ loading
    def resume_or_load(self, path: str, *, resume: bool = True) -> dict[str, Any]:
        """Resume from the last checkpoint in `save_dir` if `resume` and one exists; otherwise
        load only the model's weights from `path` ("" loads nothing).

        Returns:
            What `load` returns (e.g. `{"iteration": 4999}` when resuming).
        """
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            if not os.path.isfile(last):
                raise FileNotFoundError(
                    f"{os.path.join(self.save_dir, LAST_CHECKPOINT)} names {last}, which does not "
                    "exist; delete the tag to start over, or point it at an existing checkpoint"
                )
            return self.load(last)
        return self.load(path, checkpointables=[])

    def load(self, path: str, checkpointables: list[str] | None = None) -> dict[str, Any]:
        """Load the model (and checkpointables) from a file or URL.

        Args:
            path: local path, `file://`, http(s) or `detectron2://` URL; "" loads nothing.
            checkpointables: names of the objects to restore; None restores all present.

        Returns:
            The checkpoint's other entries (e.g. "iteration"), after removing "model" and the
            restored checkpointables.

        Raises:
            FileNotFoundError, CheckpointError, DownloadError: with the file named.
        """
        if not path:
            self.logger.info("No checkpoint found. Initializing model from scratch")
            return {}
        self.logger.info("Loading checkpoint from %s", path)
        if self.path_manager is not None and not os.path.isfile(path):
            local = self.path_manager.get_local_path(path)
        else:
            local = get_local_path(path)
        if not os.path.isfile(local):
            raise FileNotFoundError(f"checkpoint not found: {local}")
        try:
            checkpoint = self._load_file(local)
        except CheckpointError as e:
            if resolve_url(path) is None:  # the user's own file: leave it where it is
                raise
            aside = move_aside(local, "it cannot be read")
            raise CheckpointError(
                f"{e}\nThe cached file was moved to {aside}; the next run downloads it again."
            ) from e
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
            raise CheckpointError(f"{local}: expected a dict of tensors (a state_dict)")
        incompatible = self._load_model(checkpoint, local)
        self._log_incompatible_keys(incompatible)
        names = self.checkpointables if checkpointables is None else checkpointables
        for key in names:
            if key not in checkpoint:
                continue
            self.logger.info("Loading %s from %s", key, local)
            try:
                self.checkpointables[key].load_state_dict(checkpoint.pop(key))
            except (ValueError, KeyError, RuntimeError, TypeError) as e:
                raise CheckpointError(f"{local}: cannot restore {key!r}: {e}") from e
        return checkpoint

    def _load_file(self, path: str) -> dict[str, Any]:
        """Read a local `.pth` file; subclasses add formats."""
        loaded = load_torch(path)
        if isinstance(loaded, dict) and "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def _load_model(self, checkpoint: dict[str, Any], path: str) -> IncompatibleKeys:
        """Load `checkpoint["model"]` (exact names) into the model."""
        state = to_tensors(checkpoint.pop("model"), path)
        return load_exact(self.model, state)

    def _log_incompatible_keys(self, incompatible: IncompatibleKeys) -> None:
        log_incompatible_keys(self.logger, self.model, incompatible)


class PeriodicCheckpointer:
    """Save `checkpointer` every `period` iterations and at the last one, keeping the newest N.

    Args:
        checkpointer: a `Checkpointer`.
        period: save when `(iteration + 1) % period == 0` as `<prefix>_<iteration:07d>.pth`.
        max_iter: at `iteration >= max_iter - 1` also save `<prefix>_final.pth`.
        max_to_keep: keep only the newest this many periodic files in the folder (including
            those of an earlier, resumed run); `<prefix>_final.pth` is never deleted.
        file_prefix: file name prefix.
    """

    def __init__(
        self,
        checkpointer: Checkpointer,
        period: int,
        max_iter: int | None = None,
        max_to_keep: int | None = None,
        file_prefix: str = "model",
    ):
        if int(period) <= 0:
            raise ValueError(f"period must be positive, got {period}")
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(f"max_to_keep must be positive or None, got {max_to_keep}")
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_iter = max_iter
        self.max_to_keep = max_to_keep
        self.file_prefix = file_prefix
        self._periodic = re.compile(rf"^{re.escape(file_prefix)}_(\d{{7,}})\.pth$")

    def step(self, iteration: int, **extra: Any) -> None:
        """Call once per iteration (0-based); `extra` is stored as in `Checkpointer.save`."""
        iteration = int(iteration)
        state = {"iteration": iteration, **extra}
        if (iteration + 1) % self.period == 0:
            saved = self.checkpointer.save(f"{self.file_prefix}_{iteration:07d}", **state)
            if saved and self.max_to_keep is not None:
                self._delete_old(keep=saved)
        if self.max_iter is not None and iteration >= self.max_iter - 1:
            self.checkpointer.save(f"{self.file_prefix}_final", **state)

    def save(self, name: str, **extra: Any) -> None:
        """Save outside the schedule; same arguments as `Checkpointer.save`."""
        self.checkpointer.save(name, **extra)

    def _delete_old(self, keep: str) -> None:
        numbered = []
        for path in self.checkpointer.get_all_checkpoint_files():
            if m := self._periodic.match(os.path.basename(path)):
                numbered.append((int(m.group(1)), path))
        numbered.sort()
        assert self.max_to_keep is not None
        for _, path in numbered[: max(len(numbered) - self.max_to_keep, 0)]:
            if os.path.abspath(path) != os.path.abspath(keep):
                logger.info("Deleting old checkpoint %s", path)
                os.remove(path)

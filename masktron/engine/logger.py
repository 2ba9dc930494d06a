"""Logging for training runs: the console (main process) and `log.txt` files.

Console lines go through `tqdm.write`, so they print above the training progress bar instead
of breaking it.
"""

from __future__ import annotations

import logging
import os
import sys

from tqdm import tqdm

__all__ = ["setup_logger"]

_FORMAT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"
# Handlers this module added, per logger name, so a second setup replaces them.
_ADDED: dict[str, list[logging.Handler]] = {}


class _TqdmHandler(logging.StreamHandler):
    """Write records with `tqdm.write` (to the stream), keeping progress bars intact."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logger(
    output: str | None = None,
    distributed_rank: int = 0,
    *,
    name: str = "masktron",
    level: int = logging.INFO,
    color: bool = True,
    abbrev_name: str | None = None,
    enable_propagation: bool = False,
    configure_stdout: bool = True,
) -> logging.Logger:
    """Log `name` (and its children) to the console on rank 0 and to a file.

    Args:
        output: a folder (the file is `<output>/log.txt`) or a file path ending in .txt/.log;
            other ranks write `<file>.rank<r>`. None: no file.
        distributed_rank: this process's rank.
        name: the logger to configure.
        level: the logger's level.
        color, abbrev_name: accepted for Detectron2's signature (plain, full names here).
        enable_propagation: let records reach the root logger's handlers too.
        configure_stdout: add the console handler (rank 0).

    Returns:
        The logger.
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = enable_propagation
    for handler in _ADDED.pop(name, []):
        logger.removeHandler(handler)
        handler.close()
    added: list[logging.Handler] = []
    formatter = logging.Formatter(_FORMAT, datefmt=_DATEFMT)
    if distributed_rank == 0 and configure_stdout:
        console = _TqdmHandler(sys.stderr)
        console.setLevel(level)
        console.setFormatter(formatter)
        added.append(console)
    if output:
        path = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            path = f"{path}.rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(formatter)
        added.append(file_handler)
    for handler in added:
        logger.addHandler(handler)
    _ADDED[name] = added
    return logger

"""One grammar for config overrides across `masktron` commands, and the order they apply in.

Every command that reads a config (train, eval, predict) takes overrides both ways Detectron2's
tools do: trailing `KEY VALUE` pairs and `--opts KEY VALUE ...` (everything after `--opts`).
The config is built in this order, later steps winning:

1. the config file (or model-zoo name);
2. the command's flags, defaults included (`predict --conf 0.5`, `--device`, `--weights`);
3. the `KEY VALUE` overrides, always: a flag never replaces a key the user overrode
   (`predict --conf 0.7 MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.3` keeps 0.3 and says so).

Then the datasets the config's run registered from files (`DATASETS.REGISTER`) are registered.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from masktron.cli.main import CommandError

__all__ = [
    "add_override_arguments",
    "apply_flags",
    "build_config",
    "cap_workers",
    "collect_overrides",
    "resolve_config",
    "split_trailing_overrides",
]

logger = logging.getLogger(__name__)

# A config key as given on a command line: OUTPUT_DIR, SOLVER.BASE_LR, MODEL.RPN.NMS_THRESH
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*$")
ORDER_HELP = (
    "config overrides, as trailing KEY VALUE pairs or after --opts (e.g. SOLVER.BASE_LR 0.01); "
    "they win over the command's flags, which win over the config file"
)


def add_override_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, trailing: bool = True
) -> None:
    """Add `--opts KEY VALUE ...` and, with `trailing`, a positional `opts` remainder."""
    parser.add_argument(
        "--opts", dest="extra_opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
        help=ORDER_HELP,
    )  # fmt: skip
    if trailing:
        parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help=ORDER_HELP)


def is_config_key(token: str) -> bool:
    """Whether a command-line token reads as a config key (and names no existing file)."""
    return bool(_KEY.match(token)) and not os.path.exists(token)


def split_trailing_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split positional arguments into (inputs, KEY VALUE overrides): overrides start at the
    first token that reads as a config key."""
    for i, token in enumerate(items):
        if is_config_key(token):
            return list(items[:i]), list(items[i:])
    return list(items), []


def collect_overrides(args: argparse.Namespace) -> list[str]:
    """The KEY VALUE overrides of a command: trailing ones first, then those after --opts."""
    opts: list[str] = []
    for part in (getattr(args, "opts", None), getattr(args, "extra_opts", None)):
        part = [t for t in part or [] if t != "--opts"]  # `K V --opts K V`: one list
        opts += part[1:] if part[:1] == ["--"] else part
    if len(opts) % 2:
        raise CommandError(f"config overrides must be KEY VALUE pairs, got an odd number: {opts}")
    for key in opts[0::2]:
        if not _KEY.match(key):
            raise CommandError(f"{key!r} is not a config key (overrides are KEY VALUE pairs)")
    return opts


def resolve_config(name: str) -> tuple[str, str | None]:
    """(config file path, model-zoo name or None) for a file path or a model-zoo name.

    A file inside the installed zoo (`masktron/model_zoo/configs/...`) counts as that zoo name,
    so it gets the zoo's trained weights as the name does.
    """
    from masktron import model_zoo

    if os.path.isfile(name):
        return name, _zoo_name_of_file(name)
    zoo_name = name if name.endswith(".yaml") else name + ".yaml"
    try:
        return model_zoo.get_config_file(zoo_name), zoo_name
    except RuntimeError as e:
        raise CommandError(
            f"config {name!r} is neither a file nor a model-zoo name ({e})"
        ) from None


def _zoo_name_of_file(path: str) -> str | None:
    """The zoo name of a config file that is a zoo config: inside the installed zoo, or a copy
    (same last folders, same text, e.g. a checkout's configs/ folder)."""
    from masktron import model_zoo

    full = os.path.realpath(path)
    parts = full.split(os.sep)
    for depth in (2, 3):
        name = "/".join(parts[-depth:])
        try:
            zoo_file = model_zoo.get_config_file(name)
        except RuntimeError:
            continue
        with open(zoo_file, "rb") as a, open(full, "rb") as b:
            if os.path.realpath(zoo_file) == full or a.read() == b.read():
                return name
    return None


def apply_flags(cfg: Any, flags: Mapping[str, Any], overrides: Sequence[str]) -> None:
    """Set `flags` (config key -> value; None = not given) unless the user overrode the key."""
    overridden = set(overrides[0::2])
    for key, value in flags.items():
        if value is None:
            continue
        if key in overridden:
            logger.info("%s: keeping the override's value, not the flag's (%r)", key, value)
            continue
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = getattr(node, part)
        setattr(node, leaf, value)


def cap_workers(cfg: Any) -> str | None:
    """No more data-loading workers than CPUs this process may use; returns the one-line note
    to log when `DATALOADER.NUM_WORKERS` was lowered (PyTorch would warn and may stall)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    asked = cfg.DATALOADER.NUM_WORKERS
    if asked <= cpus:
        return None
    cfg.DATALOADER.NUM_WORKERS = cpus
    return f"DATALOADER.NUM_WORKERS {asked} -> {cpus} (the CPUs available)"


def build_config(
    config: str,
    overrides: Sequence[str],
    flags: Mapping[str, Any] | None = None,
    *,
    limit_workers: bool = True,
) -> tuple[Any, str | None]:
    """The config of a command, built in the documented order; returns (cfg, zoo name).

    With `limit_workers`, `DATALOADER.NUM_WORKERS` is capped at the CPU count (logged)."""
    from masktron.config import get_cfg
    from masktron.data.run_datasets import register_config_datasets

    path, zoo_name = resolve_config(config)
    cfg = get_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(overrides))
    apply_flags(cfg, flags or {}, overrides)
    register_config_datasets(cfg)
    note = cap_workers(cfg) if limit_workers else None
    if note:
        logger.info(note)
    return cfg, zoo_name

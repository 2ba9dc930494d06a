"""`masktron train --check-data` and the same check before iteration 0 (see `masktron.data.check`).

- `--check-data`: check every training image (decoded in full) and annotation, print every
  problem, and exit (0: no errors, 1: errors) without training.
- Every training run first makes the same check from image headers (fast, with a progress
  bar) and stops with a report of all errors before building the model.
- `--skip-bad`: drop the bad annotations and unreadable images instead, with a count.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from masktron.cli.main import CommandError

__all__ = ["add_check_arguments", "check_data_command", "check_training_data"]

logger = logging.getLogger(__name__)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset checks")
    group.add_argument(
        "--check-data",
        action="store_true",
        help="check every image (decoded) and annotation of DATASETS.TRAIN, report all "
        "problems, and exit without training",
    )
    group.add_argument(
        "--skip-bad",
        action="store_true",
        help="drop bad annotations and unreadable images (counted) instead of stopping",
    )


def _num_classes(cfg: Any) -> int | None:
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "RetinaNet":
        return int(cfg.MODEL.RETINANET.NUM_CLASSES)
    if arch in ("GeneralizedRCNN", "PanopticFPN"):
        return int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    return None


def _reports(cfg: Any, decode: bool) -> list[tuple[str, list[dict], Any]]:
    from masktron.data import DatasetCatalog
    from masktron.data.check import check_dataset

    out = []
    for name in cfg.DATASETS.TRAIN:
        dicts = DatasetCatalog.get(name)
        report = check_dataset(dicts, num_classes=_num_classes(cfg), decode=decode)
        out.append((name, dicts, report))
    return out


def check_data_command(cfg: Any) -> int:
    """`--check-data`: print every problem of the training sets; 0 if none is an error."""
    errors = 0
    for name, _, report in _reports(cfg, decode=True):
        full = report.summary(name, shown=len(report.problems))
        print(full if report.problems else f"{name}: OK ({report.images} images)")
        errors += len(report.errors)
    return 1 if errors else 0


def _constant(dicts: list[dict]) -> Any:
    return lambda: dicts


def check_training_data(cfg: Any, skip_bad: bool) -> None:
    """The fast check before iteration 0; with `skip_bad`, re-register the cleaned datasets."""
    from masktron.data import DatasetCatalog
    from masktron.data.check import drop_bad

    for name, dicts, report in _reports(cfg, decode=False):
        if report.warnings:
            logger.warning("%s", report.summary(name))
        if not report.errors:
            continue
        if not skip_bad:
            raise CommandError(
                report.summary(name) + "\nFix them, or pass --skip-bad to drop the bad "
                "annotations and images (masktron train --check-data lists every problem)"
            )
        kept, images, annotations = drop_bad(dicts, report)
        logger.warning(
            "%s: --skip-bad dropped %d image(s) and %d annotation(s)", name, images, annotations
        )
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, _constant(kept))

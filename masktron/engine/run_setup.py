"""What a training script does before building a trainer: arguments, logging, seeds, config.

Detectron2's `default_argument_parser`, `default_setup` and `auto_scale_workers`, used by
`masktron train` and by users' own `train_net.py` scripts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import torch

from masktron.engine import comm
from masktron.engine.logger import setup_logger
from masktron.engine.rng import seed_all_rng
from masktron.utils.env import set_float32_precision
from masktron.utils.file_io import atomic_open

__all__ = [
    "add_training_arguments",
    "record_dataset_classes",
    "auto_scale_workers",
    "default_argument_parser",
    "default_setup",
]

logger = logging.getLogger(__name__)


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add Detectron2's training options (config, resume, eval-only, processes, overrides)."""
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        metavar="PATH_OR_NAME",
        default="",
        help="config YAML file, or a model-zoo name such as "
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in OUTPUT_DIR (model, optimizer, schedule, "
        "iteration, random generators); without it MODEL.WEIGHTS is loaded and training "
        "starts at iteration 0",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate the model only")
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        metavar="N",
        help="processes per machine: one per GPU (N CPU processes with gloo without CUDA)",
    )
    parser.add_argument(
        "--num-machines", type=int, default=1, metavar="M", help="number of machines"
    )
    parser.add_argument(
        "--machine-rank", type=int, default=0, metavar="R", help="this machine's rank in [0, M)"
    )
    parser.add_argument(
        "--dist-url",
        default="auto",
        metavar="URL",
        help="tcp://HOST:PORT of the machine of rank 0 (needed with several machines), "
        "env:// (MASTER_ADDR/MASTER_PORT), or auto (a free local port; one machine)",
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. SOLVER.BASE_LR 0.01 OUTPUT_DIR out",
    )
    parser.add_argument(
        "--opts",
        dest="extra_opts",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="KEY VALUE",
        help="config overrides (the same as trailing KEY VALUE pairs)",
    )
    return parser


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with Detectron2's training options, for `train_net.py` scripts."""
    parser = argparse.ArgumentParser(
        epilog=epilog
        or (
            "Examples:\n"
            f"  {sys.argv[0]} --num-gpus 8 --config-file cfg.yaml\n"
            f"  {sys.argv[0]} --config-file cfg.yaml --eval-only MODEL.WEIGHTS model.pth\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_training_arguments(parser)


def default_setup(cfg: Any, args: Any = None) -> None:
    """Prepare a run in every process (call it after the process group is up).

    Creates `OUTPUT_DIR`, logs to the console (main process) and `OUTPUT_DIR/log.txt`, logs the
    environment and the config, records the training classes (`record_dataset_classes`), writes
    the config to `OUTPUT_DIR/config.yaml` (atomically, main process), draws a shared `SEED`
    when it is negative (so `config.yaml` records the seed used), seeds the generators with
    `SEED + rank`, and applies `CUDNN_BENCHMARK` and `FLOAT32_PRECISION`. `cfg` must not be
    frozen.
    """
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    comm.synchronize()
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    setup_logger(output_dir or None, distributed_rank=rank, level=level)
    logger.info("Rank of current process: %d. World size: %d", rank, comm.get_world_size())
    logger.info(
        "Environment: Python %s, torch %s, CUDA %s",
        sys.version.split()[0],
        torch.__version__,
        torch.cuda.get_device_name() if torch.cuda.is_available() else "not available",
    )
    if args is not None:
        logger.info("Command line arguments: %s", vars(args) if hasattr(args, "__dict__") else args)
    try:  # the class names go into config.yaml, so the run folder labels its outputs
        record_dataset_classes(cfg)
    except (OSError, ValueError, KeyError) as e:
        logger.warning("Cannot read the class names of the training data: %s", e)
    if cfg.SEED < 0:
        cfg.SEED = comm.shared_random_seed()
        logger.info("SEED was negative; using the random seed %d", cfg.SEED)
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        with atomic_open(path, "w") as f:
            f.write(cfg.dump())
        logger.info("Full config saved to %s", os.path.abspath(path))
    logger.debug("Running with full config:\n%s", cfg.dump())
    seed_all_rng(cfg.SEED + rank)
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    set_float32_precision(cfg.FLOAT32_PRECISION)


def record_dataset_classes(cfg: Any) -> None:
    """Write the class names of the first training dataset (the test one with no training
    set), and their category ids in the dataset, into `DATASETS.THING_CLASSES` and
    `DATASETS.THING_DATASET_IDS`, so the run's config.yaml labels the model's outputs.
    Keeps the config's values when the dataset's classes are unknown."""
    from masktron.data.run_datasets import training_classes

    names = list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST)
    if not names:
        return
    classes, ids = training_classes(names[0])
    if classes:
        cfg.DATASETS.THING_CLASSES = classes
        cfg.DATASETS.THING_DATASET_IDS = ids


def auto_scale_workers(cfg: Any, num_workers: int) -> Any:
    """Rescale batch size, learning rate and schedule when the number of processes differs
    from `SOLVER.REFERENCE_WORLD_SIZE` (0 disables), keeping the per-process batch size
    (the linear scaling rule; Detectron2's semantics). Returns a new config."""
    old = cfg.SOLVER.REFERENCE_WORLD_SIZE
    if old == 0 or old == num_workers:
        return cfg
    cfg = cfg.clone()
    if cfg.SOLVER.IMS_PER_BATCH % old != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be divisible by "
            f"SOLVER.REFERENCE_WORLD_SIZE ({old})"
        )
    scale = num_workers / old
    s = cfg.SOLVER
    s.IMS_PER_BATCH = cfg.SOLVER.IMS_PER_BATCH // old * num_workers
    s.BASE_LR = cfg.SOLVER.BASE_LR * scale
    s.MAX_ITER = int(round(cfg.SOLVER.MAX_ITER / scale))
    s.WARMUP_ITERS = int(round(cfg.SOLVER.WARMUP_ITERS / scale))
    s.STEPS = [int(round(x / scale)) for x in cfg.SOLVER.STEPS]
    s.CHECKPOINT_PERIOD = int(round(cfg.SOLVER.CHECKPOINT_PERIOD / scale))
    cfg.TEST.EVAL_PERIOD = int(round(cfg.TEST.EVAL_PERIOD / scale))
    s.REFERENCE_WORLD_SIZE = num_workers
    logger.info(
        "Auto-scaling the config to %d processes: IMS_PER_BATCH=%d, BASE_LR=%g, MAX_ITER=%d",
        num_workers, s.IMS_PER_BATCH, s.BASE_LR, s.MAX_ITER,
    )  # fmt: skip
    return cfg

r"""Train a model from a config (or only evaluate it), on one or many processes.

  masktron train --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \
      --coco-dataset mine_train ann/train.json images/ DATASETS.TRAIN "('mine_train',)" \
      MODEL.ROI_HEADS.NUM_CLASSES 3 OUTPUT_DIR out
  masktron train --config out/config.yaml --resume          # continue after a crash
  masktron train --config my.yaml --num-gpus 8               # 8 processes (torchrun)
  masktron train --config my.yaml --eval-only MODEL.WEIGHTS out/model_final.pth

Several machines: run on each, with its --machine-rank,
  masktron train --config my.yaml --num-gpus 8 --num-machines 2 --machine-rank R \
      --dist-url tcp://IP_OF_RANK_0:29500
or start it with torchrun (`torchrun --nnodes 2 --nproc-per-node 8 ... -m masktron train ...`).

Options go before the KEY VALUE config overrides. OUTPUT_DIR receives config.yaml, log.txt,
metrics.json (one JSON line per logged iteration), TensorBoard events, model_*.pth checkpoints,
last_checkpoint, model_best.pth (with TEST.BEST_METRIC), datasets.json (the dataset options,
reused by later runs in the same OUTPUT_DIR, e.g. with --resume) and, with --eval-only,
eval_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from masktron.cli.main import CommandError

# Datasets registered from command-line options in this process: name -> (format, paths...).
_REGISTERED: dict[str, tuple[str, ...]] = {}
# In OUTPUT_DIR: the dataset options of the runs there, [[format, name, paths...], ...].
DATASETS_FILE = "datasets.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from masktron.engine.run_setup import add_training_arguments

    data = parser.add_argument_group("register datasets (repeatable; then name them in DATASETS.*)")
    data.add_argument(
        "--coco-dataset",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "JSON", "IMAGE_ROOT"),
        help="a COCO instances JSON file and its image folder",
    )
    data.add_argument(
        "--via-dataset",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "JSON", "IMAGE_ROOT"),
        help="a VGG Image Annotator JSON file and its image folder (one class)",
    )
    data.add_argument(
        "--png-dataset",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "ROOT"),
        help="per-instance mask PNGs in the dsb2018 layout (ROOT/<id>/images, ROOT/<id>/masks)",
    )
    add_training_arguments(parser)


def _dataset_specs(args: argparse.Namespace) -> list[list[str]]:
    """[format, name, absolute paths...] of each dataset option."""
    specs = [["coco", *s] for s in args.coco_dataset] + [["via", *s] for s in args.via_dataset]
    specs += [["png", *s] for s in args.png_dataset]
    return [[kind, name, *map(os.path.abspath, paths)] for kind, name, *paths in specs]


def _register_datasets(specs: list[list[str]]) -> None:
    from masktron.data import (
        DatasetCatalog,
        register_coco_instances,
        register_png_mask_instances,
        register_via_instances,
    )

    for kind, name, *paths in specs:
        spec = (kind, *paths)
        if _REGISTERED.get(name) == spec:  # this process registered it already
            continue
        if name in DatasetCatalog:
            raise CommandError(f"dataset {name!r} is already registered; pick another name")
        if kind == "coco":
            register_coco_instances(name, {}, *paths)
        elif kind == "via":
            register_via_instances(name, {}, *paths)
        else:
            register_png_mask_instances(name, {}, *paths)
        _REGISTERED[name] = spec


def _remembered_datasets(output_dir: str, given: list[list[str]]) -> list[list[str]]:
    """The dataset options of earlier runs in `output_dir` (its `datasets.json`) that this
    command does not repeat, so `--resume` and `--eval-only` need not repeat them."""
    path = os.path.join(output_dir, DATASETS_FILE)
    if not output_dir or not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        raise CommandError(f"{path}: cannot read the remembered datasets: {e}") from None
    names = {spec[1] for spec in given}
    return [list(spec) for spec in saved if isinstance(spec, list) and spec[1] not in names]


def load_config(args: argparse.Namespace) -> Any:
    """The config of `--config` (a file or a model-zoo name) with the overrides applied."""
    from masktron.config import get_cfg

    path = args.config_file
    if not os.path.isfile(path):
        from masktron.model_zoo import get_config_file

        try:
            path = get_config_file(path)
        except RuntimeError as e:
            raise CommandError(
                f"config {args.config_file!r} is neither a file nor a model-zoo name ({e})"
            ) from None
    cfg = get_cfg()
    cfg.merge_from_file(path)
    opts = list(args.opts or [])
    cfg.merge_from_list(opts[1:] if opts[:1] == ["--"] else opts)
    return cfg


def _check_datasets(cfg: Any, eval_only: bool) -> None:
    from masktron.data import DatasetCatalog

    keys = ["TEST"] if eval_only else ["TRAIN", "TEST", "VAL"]
    for key in keys:
        for name in getattr(cfg.DATASETS, key):
            if name not in DatasetCatalog:
                raise CommandError(
                    f"DATASETS.{key} names {name!r}, which is not registered: register it with "
                    "--coco-dataset/--via-dataset/--png-dataset, or use a built-in name"
                )
    if not eval_only and not cfg.DATASETS.TRAIN:
        raise CommandError("DATASETS.TRAIN is empty: name the dataset(s) to train on")
    if eval_only and not cfg.DATASETS.TEST:
        raise CommandError("--eval-only needs DATASETS.TEST")


def main_worker(args: argparse.Namespace) -> Any:
    """What each training process runs (also the single process of a one-process run)."""
    from masktron.checkpoint import DetectionCheckpointer
    from masktron.engine import comm
    from masktron.engine.defaults import DefaultTrainer
    from masktron.engine.run_setup import default_setup
    from masktron.utils.file_io import write_json

    _register_datasets(args.dataset_specs)
    cfg = load_config(args)
    default_setup(cfg, args)
    cfg.freeze()
    if args.eval_only:
        model = DefaultTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = DefaultTrainer.test(cfg, model)
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            write_json(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), results, indent=1)
        return results
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def run(args: argparse.Namespace) -> int:
    if not args.config_file:
        args._parser.error("--config is required (a YAML file or a model-zoo name)")
    # Fail here, before any process is started, on a bad config or dataset name.
    worker_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k[0] != "_"})
    specs = _dataset_specs(worker_args)
    _register_datasets(specs)
    cfg = load_config(worker_args)
    remembered = _remembered_datasets(cfg.OUTPUT_DIR, specs)
    _register_datasets(remembered)
    _check_datasets(cfg, worker_args.eval_only)
    worker_args.dataset_specs = remembered + specs
    if specs and cfg.OUTPUT_DIR and worker_args.machine_rank == 0:
        from masktron.utils.file_io import write_json

        write_json(os.path.join(cfg.OUTPUT_DIR, DATASETS_FILE), worker_args.dataset_specs, indent=1)

    from masktron.engine.launch import launch

    try:
        launch(
            main_worker,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(worker_args,),
        )
    except FloatingPointError as e:
        raise CommandError(str(e)) from None
    except Exception as e:
        if type(e).__name__ == "ChildFailedError":  # torchrun: a worker failed (traceback above)
            raise CommandError(f"a training process failed:\n{e}") from None
        raise
    return 0

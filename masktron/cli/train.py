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

Overrides are trailing KEY VALUE pairs or follow --opts; they win over the config file (see
`masktron.cli.run_config` for the order). OUTPUT_DIR receives config.yaml (with the datasets
registered from files and the class names, so predict/eval/export need only this folder),
log.txt, metrics.json (one JSON line per LOG_PERIOD iterations), TensorBoard events,
model_*.pth checkpoints (resumable), model_final_weights.pth (the weights alone), last_checkpoint,
model_best.pth (with TEST.BEST_METRIC), curves.png (loss and AP), datasets.json (the dataset
options, reused by later runs in the same OUTPUT_DIR) and, with --eval-only, eval_results.json.
Ctrl-C (or SIGTERM) saves a checkpoint after the current iteration and exits 130 (143).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from masktron.cli.data_check import add_check_arguments, check_data_command, check_training_data
from masktron.cli.main import CommandError

logger = logging.getLogger(__name__)
# In OUTPUT_DIR: the dataset specs of the runs there (a list of DATASETS.REGISTER entries).
DATASETS_FILE = "datasets.json"


# Repeatable dataset options: (flag, metavar of its values, help).
_DATASET_OPTIONS = (
    ("--coco-dataset", ("NAME", "JSON", "IMAGE_ROOT"),
     "a COCO instances JSON file and its image folder"),
    ("--via-dataset", ("NAME", "JSON", "IMAGE_ROOT"),
     "a VGG Image Annotator JSON file and its image folder (one class 'object' unless "
     "--classes or --class-attribute says otherwise)"),
    ("--png-dataset", ("NAME", "ROOT"),
     "per-instance mask PNGs in the dsb2018 layout (ROOT/<id>/images, ROOT/<id>/masks)"),
    ("--classes", ("NAME", "CLASS,CLASS,..."),
     "class names of a --via-dataset/--png-dataset, comma-separated in class-id order "
     "(PNG masks of class C end in _C.png when there are several)"),
    ("--class-attribute", ("NAME", "ATTRIBUTE"),
     "the VIA region attribute that holds each region's class name (for a --via-dataset)"),
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from masktron.engine.run_setup import add_training_arguments

    data = parser.add_argument_group("register datasets (repeatable; then name them in DATASETS.*)")
    for flag, metavar, help_text in _DATASET_OPTIONS:
        data.add_argument(
            flag, nargs=len(metavar), action="append", default=[], metavar=metavar, help=help_text
        )
    add_training_arguments(parser)
    add_check_arguments(parser)
    parser.add_argument(
        "--verbose", action="store_true", help="also print debug lines (the model's structure)"
    )


def _dataset_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The DATASETS.REGISTER specs of the dataset options."""
    from masktron.data.run_datasets import DatasetSpecError, dataset_spec

    given = [("coco", s) for s in args.coco_dataset] + [("via", s) for s in args.via_dataset]
    given += [("png", s) for s in args.png_dataset]
    names = [name for _, (name, *_) in given]
    classes = {
        name: [c.strip() for c in text.split(",") if c.strip()] for name, text in args.classes
    }
    attributes = dict(args.class_attribute)
    for option, table in (("--classes", classes), ("--class-attribute", attributes)):
        for name in table:
            if name not in names:
                raise CommandError(f"{option} {name}: no dataset option registers {name!r}")
    try:
        return [
            dataset_spec(
                fmt,
                name,
                paths,
                class_attribute=attributes.get(name),
                classes=classes.get(name, ()),
            )
            for fmt, (name, *paths) in given
        ]
    except DatasetSpecError as e:
        raise CommandError(str(e)) from None


def _remembered_datasets(output_dir: str) -> list[dict[str, Any]]:
    """The dataset specs of earlier runs in `output_dir` (its `datasets.json`), so `--resume`
    and `--eval-only` with the original config need not repeat the options."""
    from masktron.data.run_datasets import dataset_spec

    path = os.path.join(output_dir, DATASETS_FILE)
    if not output_dir or not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        raise CommandError(f"{path}: cannot read the remembered datasets: {e}") from None
    # Older runs wrote [format, name, paths...] lists.
    return [
        dataset_spec(s[0], s[1], s[2:]) if isinstance(s, list) else s
        for s in saved
        if isinstance(s, (list, dict))
    ]


def _merge_specs(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Specs by name, a later group's spec replacing an earlier one of the same name."""
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        for spec in group:
            merged[str(spec["name"])] = dict(spec)
    return list(merged.values())


def load_config(args: argparse.Namespace) -> Any:
    """The config of `--config` (a file or a model-zoo name) with the overrides applied."""
    from masktron.cli.run_config import build_config, collect_overrides

    cfg, _ = build_config(args.config_file, collect_overrides(args), limit_workers=False)
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


def test_with_tta(cfg: Any, model: Any) -> dict[str, Any]:
    """Evaluate `model` on `DATASETS.TEST` with test-time augmentation (`TEST.AUG.*`), as
    Detectron2's tools/train_net.py does when `TEST.AUG.ENABLED`: results keyed `<task>_TTA`,
    COCO results written under `OUTPUT_DIR/inference_TTA`."""
    from masktron.engine.defaults import DefaultTrainer
    from masktron.modeling import GeneralizedRCNNWithTTA

    logger.info("Running inference with test-time augmentation ...")
    tta = GeneralizedRCNNWithTTA(cfg, model)
    folder = os.path.join(cfg.OUTPUT_DIR, "inference_TTA") if cfg.OUTPUT_DIR else None
    evaluators = [
        DefaultTrainer.build_evaluator(cfg, name, output_folder=folder)
        for name in cfg.DATASETS.TEST
    ]
    results = DefaultTrainer.test(cfg, tta, evaluators)
    return {f"{key}_TTA": value for key, value in results.items()}


def main_worker(args: argparse.Namespace) -> Any:
    """What each training process runs (also the single process of a one-process run)."""
    from masktron.checkpoint import DetectionCheckpointer
    from masktron.cli.run_config import cap_workers
    from masktron.data.run_datasets import register_dataset_spec
    from masktron.engine import comm
    from masktron.engine.defaults import DefaultTrainer
    from masktron.engine.run_setup import default_setup
    from masktron.utils.file_io import write_json

    for spec in args.dataset_specs:
        register_dataset_spec(spec)
    cfg = load_config(args)
    cfg.DATASETS.REGISTER = args.dataset_specs
    note = cap_workers(cfg)  # before config.yaml is written: it records what the run used
    default_setup(cfg, args)
    if note:
        logger.info(note)
    cfg.freeze()
    if args.eval_only:
        model = DefaultTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = DefaultTrainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(test_with_tta(cfg, model))
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            write_json(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), results, indent=1)
        return results
    check_training_data(cfg, skip_bad=args.skip_bad)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    results = trainer.train()
    if cfg.TEST.AUG.ENABLED and cfg.DATASETS.TEST:
        results = {**(results or {}), **test_with_tta(cfg, trainer.model)}
    return results


def run(args: argparse.Namespace) -> int:
    from masktron.data.run_datasets import DatasetSpecError, register_dataset_spec
    from masktron.engine.interrupt import TrainingInterrupted

    if not args.config_file:
        args._parser.error("--config is required (a YAML file or a model-zoo name)")
    # Fail here, before any process is started, on a bad config or dataset name.
    worker_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k[0] != "_"})
    specs = _dataset_specs(worker_args)
    try:
        for spec in specs:
            register_dataset_spec(spec)
        cfg = load_config(worker_args)  # registers its DATASETS.REGISTER (e.g. out/config.yaml)
        remembered = _remembered_datasets(cfg.OUTPUT_DIR)
        all_specs = _merge_specs(remembered, cfg.DATASETS.REGISTER, specs)
        for spec in all_specs:
            register_dataset_spec(spec)
    except DatasetSpecError as e:
        raise CommandError(str(e)) from None
    _check_datasets(cfg, worker_args.eval_only)
    if worker_args.check_data:
        return check_data_command(cfg)
    worker_args.dataset_specs = all_specs
    if specs and cfg.OUTPUT_DIR and worker_args.machine_rank == 0:
        from masktron.utils.file_io import write_json

        write_json(os.path.join(cfg.OUTPUT_DIR, DATASETS_FILE), all_specs, indent=1)

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
    except TrainingInterrupted as e:
        where = f"; saved {e.checkpoint} (continue with --resume)" if e.checkpoint else ""
        print(f"masktron train: interrupted by {e.args[0]}{where}", file=sys.stderr)
        return e.exit_code
    except FloatingPointError as e:
        raise CommandError(str(e)) from None
    except Exception as e:
        if type(e).__name__ == "ChildFailedError":  # torchrun: a worker failed (traceback above)
            raise CommandError(f"a training process failed:\n{e}") from None
        raise
    return 0

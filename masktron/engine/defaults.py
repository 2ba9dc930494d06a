"""`DefaultTrainer`: Detectron2's standard training from a config, with exact resuming.

    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()

Every component comes from an overridable classmethod (`build_model`, `build_optimizer`,
`build_lr_scheduler`, `build_train_loader`, `build_test_loader`, `build_evaluator`, ...) and
`build_hooks` assembles the hooks. Checkpoints hold the model and the trainer's state: the
optimizer (and AMP scaler), the scheduler (in the LRScheduler hook's state), the iteration,
best-metric and early-stopping state, the data seed and every process's random generators. A
run resumed from one continues exactly as if it had not stopped: the data loader starts at the
next iteration's batch and the generators where they were.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from masktron.checkpoint import DetectionCheckpointer
from masktron.config.rules import validate as validate_config
from masktron.config.rules import validate_batch_memory
from masktron.engine import comm, hooks
from masktron.engine.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from masktron.engine.interrupt import InterruptCheckpointer
from masktron.engine.metric_hooks import parse_metric
from masktron.engine.run_setup import (
    add_training_arguments,
    auto_scale_workers,
    default_argument_parser,
    default_setup,
)
from masktron.engine.train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = [
    "DefaultTrainer",
    "add_training_arguments",
    "auto_scale_workers",
    "create_ddp_model",
    "default_argument_parser",
    "default_setup",
    "default_writers",
]

logger = logging.getLogger(__name__)


def create_ddp_model(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Wrap `model` in `DistributedDataParallel` when there are several processes.

    Args:
        **kwargs: for `DistributedDataParallel`. `broadcast_buffers=False` (Detectron2's
            choice: buffers such as batch-norm statistics are synced when wrapping, not at every
            forward) becomes `forward_sync_buffers=False` on PyTorch versions that renamed it.
    """
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs and next(model.parameters()).is_cuda:
        kwargs["device_ids"] = [comm.get_local_rank()]
    names = inspect.signature(DistributedDataParallel.__init__).parameters
    if "broadcast_buffers" in kwargs and "forward_sync_buffers" in names:
        kwargs["forward_sync_buffers"] = kwargs.pop("broadcast_buffers")
    return DistributedDataParallel(model, **kwargs)


def default_writers(output_dir: str, max_iter: int | None = None) -> list[EventWriter]:
    """Console (progress bar and log lines), `metrics.json` and TensorBoard writers."""
    writers: list[EventWriter] = []
    if max_iter is not None:
        writers.append(CommonMetricPrinter(max_iter))
    writers += [
        JSONWriter(os.path.join(output_dir, "metrics.json")),
        TensorboardXWriter(output_dir),
    ]
    return writers


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class _SkipFirst:
    """An iterable that drops the first `count` items of `iterable` (fast-forward fallback)."""

    def __init__(self, iterable: Iterable, count: int):
        self.iterable, self.count = iterable, count

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.iterable), self.count, None)


class DefaultTrainer(TrainerBase):
    """Train the model of a config on `DATASETS.TRAIN`, evaluate on `DATASETS.TEST`.

    Args:
        cfg: the run's config (cloned; `trainer.cfg` is the copy, rescaled by
            `auto_scale_workers` and with a concrete `SEED`).

    Attributes:
        model, optimizer, scheduler, data_loader, checkpointer, cfg.
    """

    def __init__(self, cfg: Any):
        super().__init__()
        validate_config(cfg)
        cfg = auto_scale_workers(cfg.clone(), comm.get_world_size())
        validate_batch_memory(cfg, comm.get_world_size(), comm.get_local_size())
        if cfg.SEED < 0:  # one seed for every process and for resuming (kept in checkpoints)
            cfg.SEED = comm.shared_random_seed()
        self.cfg = cfg
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        from masktron.solver import build_gradient_clipper

        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(
            model, data_loader, optimizer, grad_clipper=build_gradient_clipper(cfg)
        )
        self._trainer._hooks = self._hooks  # hooks' after_backward runs inside its run_step
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self._last_eval_results: Any = None
        self._state_restored = False
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ components
    @property
    def model(self) -> nn.Module:
        return self._trainer.model

    @model.setter
    def model(self, model: nn.Module) -> None:
        # Detectron2's property: the model is the inner trainer's, so assigning replaces it there
        self._trainer.model = model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    @property
    def data_loader(self) -> Iterable:
        return self._trainer.data_loader

    @classmethod
    def build_model(cls, cfg: Any) -> nn.Module:
        from masktron.models.build import build_model

        model = build_model(cfg)
        logger.debug("Model:\n%s", model)  # on the console with `masktron train --verbose`
        return model

    @classmethod
    def build_optimizer(cls, cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
        from masktron.solver import build_optimizer

        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: Any, optimizer: torch.optim.Optimizer) -> Any:
        from masktron.solver import build_lr_scheduler

        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg: Any) -> Iterable:
        from masktron.data import build_detection_train_loader

        return build_detection_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: Any, dataset_name: str) -> Iterable:
        from masktron.data import build_detection_test_loader

        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_val_loader(cls, cfg: Any) -> Iterable:
        """The `DATASETS.VAL` images with ground truth, resized as for testing (no random
        augmentation), for the validation loss."""
        from masktron.data import DatasetMapper, build_detection_test_loader

        mapper_args = DatasetMapper.from_config(cfg, is_train=False)
        mapper_args["is_train"] = True  # keep the annotations
        return build_detection_test_loader(
            cfg, list(cfg.DATASETS.VAL), mapper=DatasetMapper(**mapper_args)
        )

    @classmethod
    def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None):
        """The dataset's evaluator (its metadata's `evaluator_type`); COCO evaluates "bbox"
        and, with `MODEL.MASK_ON`, "segm", even when the model detects nothing yet."""
        from masktron.data import MetadataCatalog
        from masktron.evaluation import COCOEvaluator, build_evaluator

        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        if MetadataCatalog.get(dataset_name).get("evaluator_type") == "coco":
            tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
            return COCOEvaluator(dataset_name, tasks, output_dir=output_folder)
        return build_evaluator(dataset_name, output_folder)

    @classmethod
    def test(cls, cfg: Any, model: nn.Module, evaluators: Any = None) -> dict[str, Any]:
        """Evaluate `model` on each of `DATASETS.TEST`.

        Returns:
            `{dataset: {task: {metric: value}}}`, or `{task: {metric: value}}` for one dataset
            (on the main process; empty elsewhere).
        """
        from masktron.evaluation import inference_on_dataset, print_csv_format

        names = list(cfg.DATASETS.TEST)
        if evaluators is not None and not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        if evaluators is not None and len(evaluators) != len(names):
            raise ValueError(f"{len(evaluators)} evaluators for {len(names)} DATASETS.TEST")
        results: dict[str, Any] = OrderedDict()
        for idx, name in enumerate(names):
            loader = cls.build_test_loader(cfg, name)
            evaluator = evaluators[idx] if evaluators else cls.build_evaluator(cfg, name)
            result = inference_on_dataset(_unwrap(model), loader, evaluator)
            results[name] = result
            if comm.is_main_process() and result:
                logger.info("Evaluation results for %s in csv format:", name)
                print_csv_format(result)
        if len(results) == 1:
            return next(iter(results.values()))
        return results

    auto_scale_workers = staticmethod(auto_scale_workers)

    def build_writers(self) -> list[EventWriter]:
        """`default_writers`, and the trackers named by `LOG_WRITERS` (W&B, MLflow)."""
        writers = default_writers(self.cfg.OUTPUT_DIR, self.max_iter)
        if self.cfg.LOG_WRITERS:
            from masktron.engine.tracking import build_tracking_writer

            config = self.cfg.to_dict()
            for name in self.cfg.LOG_WRITERS:
                writers.append(build_tracking_writer(name, self.cfg.OUTPUT_DIR, config))
        return writers

    def build_hooks(self) -> list[hooks.HookBase]:
        """IterationTimer, LRScheduler, PreciseBN (with `TEST.PRECISE_BN.ENABLED`),
        PeriodicCheckpointer, ValidationLoss (with `DATASETS.VAL`), EvalHook (with
        `DATASETS.TEST`), BestCheckpointer (with `TEST.BEST_METRIC`), EarlyStopping (with
        `TEST.EARLY_STOP.ENABLED`) and, on the main process, PeriodicWriter."""
        cfg = self.cfg
        period = cfg.TEST.EVAL_PERIOD
        ret: list[hooks.HookBase] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
        ]
        if cfg.TEST.PRECISE_BN.ENABLED:
            # A loader of its own, so the training batches stay those of an undisturbed run.
            loader = self.build_train_loader(cfg)
            num_iter = cfg.TEST.PRECISE_BN.NUM_ITER
            ret.append(hooks.PreciseBN(period, _unwrap(self.model), loader, num_iter))
        ret.append(
            hooks.PeriodicCheckpointer(
                self.checkpointer,
                cfg.SOLVER.CHECKPOINT_PERIOD,
                max_to_keep=cfg.SOLVER.MAX_TO_KEEP or None,
            )
        )
        if cfg.DATASETS.VAL:
            val_loader = self.build_val_loader(cfg)
            ret.append(hooks.ValidationLoss(period, _unwrap(self.model), val_loader))
        if cfg.DATASETS.TEST:
            ret.append(hooks.EvalHook(period, self._test_and_keep_results))
        if cfg.TEST.BEST_METRIC or cfg.TEST.EARLY_STOP.ENABLED:
            if not cfg.TEST.BEST_METRIC:
                raise ValueError(
                    "TEST.EARLY_STOP needs TEST.BEST_METRIC, e.g. segm/AP or -val_loss"
                )
            if period <= 0:
                raise ValueError("TEST.BEST_METRIC needs evaluations: set TEST.EVAL_PERIOD > 0")
            if not (cfg.DATASETS.TEST or cfg.DATASETS.VAL):
                raise ValueError("TEST.BEST_METRIC needs DATASETS.TEST or DATASETS.VAL")
            metric, mode = parse_metric(cfg.TEST.BEST_METRIC)
            ret.append(hooks.BestCheckpointer(period, self.checkpointer, metric, mode))
            if cfg.TEST.EARLY_STOP.ENABLED:
                patience = cfg.TEST.EARLY_STOP.PATIENCE
                ret.append(hooks.EarlyStopping(period, metric, mode, patience))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.LOG_PERIOD))
        ret.append(InterruptCheckpointer(self.checkpointer))
        return ret

    def _test_and_keep_results(self) -> Any:
        self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results

    # ------------------------------------------------------------------ running
    def resume_or_load(self, resume: bool = True) -> None:
        """With `resume` and a checkpoint in `OUTPUT_DIR`, restore the whole run from it and
        continue at the next iteration; otherwise load `MODEL.WEIGHTS` (weights only) and
        start at iteration 0."""
        self._state_restored = False
        loaded = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            if not self._state_restored:
                logger.warning(
                    "%s has no trainer state: the optimizer, schedule and random generators "
                    "start afresh",
                    self.checkpointer.get_checkpoint_file(),
                )
            self.start_iter = int(loaded.get("iteration", self.iter)) + 1
            self._fast_forward(self.start_iter)

    def _fast_forward(self, start_iter: int) -> None:
        """Make the loader yield iteration `start_iter`'s batch first."""
        if start_iter <= 0:
            return
        loader = self.data_loader
        batches = getattr(loader, "batch_sampler", None)
        if batches is not None and isinstance(getattr(batches, "start_batch", None), int):
            batches.start_batch = start_iter  # masktron's loaders skip without reading images
            return
        logger.warning(
            "Resuming at iteration %d: skipping that many batches of the training loader "
            "(build it with masktron.data.build_detection_train_loader to skip for free)",
            start_iter,
        )
        self._trainer.reset_data_loader(_SkipFirst(loader, start_iter))

    def train(self, start_iter: int | None = None, max_iter: int | None = None) -> Any:
        """Train from `start_iter` (default: 0, or where `resume_or_load` resumes) to
        `max_iter` (default `SOLVER.MAX_ITER`); returns the last evaluation results."""
        super().train(
            self.start_iter if start_iter is None else start_iter,
            self.max_iter if max_iter is None else max_iter,
        )
        if comm.is_main_process() and self.cfg.OUTPUT_DIR:
            self._write_run_summary()
        return self._last_eval_results

    def _write_run_summary(self) -> None:
        """The stripped weights (`model_final_weights.pth`) and `curves.png`."""
        from masktron.checkpoint.weights_file import save_model_weights
        from masktron.engine.curves import plot_metrics

        out = self.cfg.OUTPUT_DIR
        if self.iter >= self.max_iter or self.stop_requested:
            path = os.path.join(out, "model_final_weights.pth")
            save_model_weights(_unwrap(self.model), path, half=self.cfg.SOLVER.FINAL_WEIGHTS_FP16)
            logger.info("Weights only (for predict/eval/export) saved to %s", path)
        metrics = os.path.join(out, "metrics.json")
        if os.path.isfile(metrics) and plot_metrics(metrics, os.path.join(out, "curves.png")):
            logger.info("Loss and metric curves saved to %s", os.path.join(out, "curves.png"))

    def prepare_data(self) -> None:
        self._trainer.prepare_data()

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.storage = self.storage
        self._trainer.run_step()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_trainer"] = self._trainer.solver_state_dict()
        state["data_seed"] = int(self.cfg.SEED)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._state_restored = True
        self._trainer.load_solver_state_dict(state.get("_trainer", {}))
        seed = state.get("data_seed")
        if seed is not None and int(seed) != self.cfg.SEED:
            logger.info("Rebuilding the training loader with the checkpoint's seed %d", seed)
            self.cfg.SEED = int(seed)
            self._trainer.reset_data_loader(self.build_train_loader(self.cfg))

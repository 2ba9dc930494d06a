"""The evaluator contract (`reset` / `process` / `evaluate`) and `inference_on_dataset`.

An evaluator sees each batch of model inputs with the model's outputs (`process`) and turns what
it gathered into `{task: {metric: value}}` (`evaluate`), Detectron2's layout. Under
`torch.distributed`, evaluators gather their per-rank state to rank 0, which alone returns figures.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)


def get_world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def is_main_process() -> bool:
    if get_world_size() == 1:
        return True
    return torch.distributed.get_rank() == 0


def gather_to_main(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on rank 0 (other ranks get an empty list).

    Without `torch.distributed` (or with one process) this is `[obj]`.
    """
    if get_world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered if is_main_process() else []


class DatasetEvaluator:
    """Base class: accumulate model outputs over a dataset, then compute metrics."""

    def reset(self) -> None:
        """Forget everything processed; called before a new round of evaluation."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Take one batch: the model's `inputs` and its `outputs` (lists of dicts)."""

    def evaluate(self) -> dict[str, Any]:
        """The figures, `{task: {metric: value}}`; an empty dict on ranks other than 0."""
        return {}


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators run as one; their results are merged (task names must differ)."""

    def __init__(self, evaluators: Sequence[DatasetEvaluator]):
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for evaluator in self._evaluators:
            result = evaluator.evaluate() or {}
            if is_main_process():
                for key, value in result.items():
                    if key in results:
                        raise ValueError(
                            f"two evaluators ({type(evaluator).__name__} and an earlier one) both "
                            f"produce results named {key!r}"
                        )
                    results[key] = value
        return results


@contextmanager
def inference_context(model: Any):
    """Put a `nn.Module` in eval mode for the block, then restore its training flag."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def inference_on_dataset(
    model: Callable[[Any], Any],
    data_loader: Iterable,
    evaluator: DatasetEvaluator | Sequence[DatasetEvaluator] | None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Run `model` on every batch of `data_loader` and evaluate its outputs.

    The model runs in eval mode under `torch.no_grad()`. Time per batch is logged without the
    first 5 batches (warm-up), split into pure model time and the rest (data loading, evaluator).

    Args:
        model: called on each batch (a list of input dicts); returns a list of output dicts.
        data_loader: an iterable of batches, ideally with a `len`.
        evaluator: a `DatasetEvaluator`, a list of them, or None to time the model only.
        progress: show a progress bar (on rank 0).

    Returns:
        `evaluator.evaluate()`: `{task: {metric: value}}`, `{}` on ranks other than 0.
    """
    if evaluator is None:
        evaluator = DatasetEvaluators([])
    elif not isinstance(evaluator, DatasetEvaluator):
        evaluator = DatasetEvaluators(evaluator)
    try:
        total: int | None = len(data_loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    logger.info(
        "Start inference on %s batches", total if total is not None else "an unknown number of"
    )
    num_warmup = min(5, total - 1) if total else 5
    evaluator.reset()
    compute_time = data_time = eval_time = 0.0
    count = 0
    start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        bar = stack.enter_context(
            tqdm(
                total=total,
                desc="inference",
                unit="batch",
                disable=not (progress and is_main_process()),
            )
        )
        tick = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            if idx == num_warmup:  # timing starts after the warm-up batches
                start, count = time.perf_counter(), 0
                compute_time = data_time = eval_time = 0.0
            t0 = time.perf_counter()
            data_time += t0 - tick
            outputs = model(inputs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            evaluator.process(inputs, outputs)
            tick = time.perf_counter()
            compute_time += t1 - t0
            eval_time += tick - t1
            count += 1
            bar.update(1)
    total_time = time.perf_counter() - start
    per_batch = total_time / max(count, 1)
    devices = get_world_size()
    logger.info(
        "Total inference time: %s (%.6f s / batch per device, on %d devices)",
        datetime.timedelta(seconds=int(total_time)),
        per_batch,
        devices,
    )
    logger.info(
        "Total inference pure compute time: %s (%.6f s / batch per device, on %d devices); "
        "data %.6f s / batch, evaluator %.6f s / batch",
        datetime.timedelta(seconds=int(compute_time)),
        compute_time / max(count, 1),
        devices,
        data_time / max(count, 1),
        eval_time / max(count, 1),
    )
    results = evaluator.evaluate()
    return results if results is not None else {}

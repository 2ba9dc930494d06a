"""Model statistics (Detectron2's `detectron2.utils.analysis`): parameter and flop counts.

`parameter_count` gives, for every module path prefix, the number of parameters below it
("" is the whole model), as fvcore's function of the same name does. `flop_count_operators`
counts with PyTorch's own `torch.utils.flop_counter` (no fvcore): it covers the matrix
operators (convolutions, linear layers, matmuls, attention), which is where fvcore's counts lie
too; elementwise operators, which fvcore counts for a few ops, are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "find_unused_parameters",
    "flop_count_operators",
    "parameter_count",
    "parameter_count_table",
]

# torch operator -> the operator names Detectron2 / fvcore report.
_OP_NAMES = {"convolution": "conv", "addmm": "linear", "mm": "matmul", "bmm": "bmm"}


def parameter_count(model: nn.Module) -> defaultdict[str, int]:
    """Parameters per module prefix: {"": total, "backbone": n, "backbone.stem": n, ...}."""
    counts: defaultdict[str, int] = defaultdict(int)
    for name, param in model.named_parameters():
        size = param.numel()
        parts = name.split(".")
        for k in range(len(parts) + 1):
            counts[".".join(parts[:k])] += size
    return counts


def parameter_count_table(model: nn.Module, max_depth: int = 3) -> str:
    """A two-column text table of `parameter_count` down to `max_depth` name components."""
    counts = parameter_count(model)
    rows = [("model", counts[""])]
    rows += [(k, v) for k, v in counts.items() if k and k.count(".") < max_depth]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'name':<{width}}  #params", f"{'-' * width}  -------"]
    lines += [f"{name:<{width}}  {_human(value)}" for name, value in rows]
    return "\n".join(lines)


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def flop_count_operators(model: nn.Module, inputs: Any) -> defaultdict[str, float]:
    """GFlops per operator type of one inference `model(inputs)`, one multiply-add counted as
    one flop (fvcore's and Detectron2's convention; torch counts it as two).

    Args:
        model: run in eval mode (its mode is restored afterwards).
        inputs: what `model` takes, e.g. Detectron2's list of dicts.

    Returns:
        {"conv": g, "linear": g, ...}.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(inputs)
    finally:
        model.train(was_training)
    result: defaultdict[str, float] = defaultdict(float)
    for op, flops in counter.get_flop_counts()["Global"].items():
        name = str(op).split(".")[-1]
        result[_OP_NAMES.get(name, name)] += flops / 2 / 1e9
    return result


def find_unused_parameters(model: nn.Module, inputs: Any) -> list[str]:
    """Names of the parameters that get no gradient from one training step's loss.

    Runs `model(inputs)` (`model(*inputs)` for a tuple), sums the losses (a dict of losses is
    summed over its values) and back-propagates; a trainable parameter whose `.grad` stays
    None does not contribute to the loss (what makes DistributedDataParallel ask for
    `find_unused_parameters=True`). Gradients are cleared before and after.

    Args:
        model: a module in training mode that returns a loss tensor or a dict of losses.
        inputs: its argument, or a tuple of its arguments.
    """
    if not model.training:
        raise ValueError("find_unused_parameters needs a model in training mode (model.train())")
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    for _, p in params:
        p.grad = None
    losses = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    loss = sum(losses.values()) if isinstance(losses, dict) else losses
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"the model returned {type(losses).__name__}, not a loss tensor or dict")
    loss.backward()
    unused = [name for name, p in params if p.grad is None]
    for _, p in params:
        p.grad = None
    return unused

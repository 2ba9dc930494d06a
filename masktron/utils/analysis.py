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

__all__ = ["flop_count_operators", "parameter_count", "parameter_count_table"]

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

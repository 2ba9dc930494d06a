"""Model statistics (Detectron2's `detectron2.utils.analysis`): parameter counts.

`parameter_count` gives, for every module path prefix, the number of parameters below it
("" is the whole model), as fvcore's function of the same name does.
"""

from __future__ import annotations

from collections import defaultdict

from torch import nn

__all__ = ["parameter_count", "parameter_count_table"]


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

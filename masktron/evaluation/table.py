"""Plain-text metric tables in the layout Detectron2 logs (markdown "pipe" tables).

Detectron2 formats them with `tabulate`; this is the small part of it that the tables need:
columns at least two wider than their header, floats with 3 decimals, one space of padding.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)


def _cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, floatfmt)
    return str(value)


def _pad(text: str, width: int, align: str) -> str:
    spec = {"center": "^", "left": "<", "right": ">"}[align]
    return format(text, f"{spec}{width}")


def format_table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    align: str = "center",
    floatfmt: str = ".3f",
) -> str:
    """A markdown pipe table.

    Args:
        rows: the cells, row by row; `None` prints as an empty cell, floats with `floatfmt`.
        headers: one per column.
        align: "center", "left" or "right", for every column.
        floatfmt: format spec of floats.
    """
    cells = [[_cell(v, floatfmt) for v in row] for row in rows]
    widths = [
        max([len(h) + 2] + [len(row[i]) for row in cells if i < len(row)])
        for i, h in enumerate(headers)
    ]
    rule = {"center": ":{}:", "left": ":{}-", "right": "-{}:"}[align]

    def line(texts: Sequence[str]) -> str:
        return "| " + " | ".join(_pad(t, w, align) for t, w in zip(texts, widths)) + " |"

    lines = [line(headers), "|" + "|".join(rule.format("-" * w) for w in widths) + "|"]
    lines += [line(row + [""] * (len(headers) - len(row))) for row in cells]
    return "\n".join(lines)


def create_small_table(small_dict: Mapping[str, Any]) -> str:
    """One-row table of `{metric: value}` (Detectron2's `create_small_table`)."""
    return format_table([list(small_dict.values())], list(small_dict.keys()))


def per_category_table(values: Mapping[str, float], name: str = "AP", columns: int = 3) -> str:
    """`category | AP` pairs, `columns` pairs to a line (Detectron2's per-category table)."""
    pairs = list(values.items())
    n = max(1, min(columns, len(pairs)))
    flat = list(itertools.chain.from_iterable(pairs))
    rows = [list(r) for r in itertools.zip_longest(*[flat[i :: n * 2] for i in range(n * 2)])]
    return format_table(rows, ["category", name] * n, align="left")


def panoptic_table(pq_results: Mapping[str, Mapping[str, float]]) -> str:
    """`All / Things / Stuff` rows of PQ, SQ, RQ in percent and the category count."""
    rows = [
        [group]
        + [100 * pq_results[group][k] for k in ("pq", "sq", "rq")]
        + [pq_results[group]["n"]]
        for group in ("All", "Things", "Stuff")
    ]
    return format_table(rows, ["", "PQ", "SQ", "RQ", "#categories"])


def print_csv_format(results: Mapping[str, Any]) -> None:
    """Log the main figures of each task as comma-separated lines, ready to paste into a sheet.

    Per-category figures (keys with a '-') are left out, as in Detectron2.
    """
    for task, res in results.items():
        if isinstance(res, Mapping):
            important = [(k, v) for k, v in res.items() if "-" not in k]
            logger.info("copypaste: Task: %s", task)
            logger.info("copypaste: %s", ",".join(k for k, _ in important))
            logger.info("copypaste: %s", ",".join(f"{v:.4f}" for _, v in important))
        else:
            logger.info("copypaste: %s=%s", task, res)

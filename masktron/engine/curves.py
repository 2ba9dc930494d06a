"""Loss and evaluation curves of a run as one PNG, drawn with Pillow (no plotting library).

`plot_metrics("out/metrics.json", "out/curves.png")` draws up to two panels from the JSON
lines the trainer writes: the losses (`total_loss`, `val_loss`) and the AP-like metrics
(`bbox/AP`, `segm/AP`, `panoptic_seg/PQ`, ...), each against the iteration.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from PIL import Image, ImageDraw

from masktron.utils.file_io import atomic_open

__all__ = ["plot_metrics", "read_metric_series"]

Series = dict[str, list[tuple[int, float]]]
_PANEL = (640, 300)  # width, height of one panel, pixels
_MARGIN = (60, 20, 20, 40)  # left, top, right, bottom
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
_LOSSES = ("total_loss", "val_loss")
_METRIC_SUFFIXES = ("/AP", "/PQ", "/mIoU")


def read_metric_series(metrics_json: str | os.PathLike) -> Series:
    """name -> [(iteration, value), ...] from a metrics.json of JSON lines (bad lines skipped)."""
    series: Series = defaultdict(list)
    with open(metrics_json, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or "iteration" not in record:
                continue
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    series[key].append((int(record["iteration"]), float(value)))
    return dict(series)


def _draw_panel(
    draw: ImageDraw.ImageDraw, top: int, title: str, curves: Series, x_range: tuple[int, int]
) -> None:
    left, mtop, right, bottom = _MARGIN
    x0, y0 = left, top + mtop
    x1, y1 = _PANEL[0] - right, top + _PANEL[1] - bottom
    points = [p for values in curves.values() for p in values]
    lo_x, hi_x = x_range
    lo_y, hi_y = min(p[1] for p in points), max(p[1] for p in points)
    hi_x, hi_y = max(hi_x, lo_x + 1), hi_y if hi_y > lo_y else lo_y + 1.0

    def xy(it: float, v: float) -> tuple[float, float]:
        return x0 + (it - lo_x) / (hi_x - lo_x) * (x1 - x0), y1 - (v - lo_y) / (hi_y - lo_y) * (
            y1 - y0
        )

    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    draw.text((x0, top + 3), title, fill=(0, 0, 0))
    for k in range(5):  # value ticks
        v = lo_y + (hi_y - lo_y) * k / 4
        y = xy(lo_x, v)[1]
        draw.line((x0 - 4, y, x0, y), fill=(0, 0, 0))
        draw.text((4, y - 6), f"{v:.4g}", fill=(0, 0, 0))
    draw.text((x0, y1 + 6), f"iteration {lo_x}", fill=(0, 0, 0))
    draw.text((x1 - 90, y1 + 6), f"iteration {hi_x}", fill=(0, 0, 0))
    for i, (name, values) in enumerate(sorted(curves.items())):
        color = _COLORS[i % len(_COLORS)]
        pts = [xy(it, v) for it, v in sorted(values)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        for px, py in pts if len(pts) <= 50 else pts[-1:]:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
        draw.text((x1 - 150, y0 + 4 + 12 * i), name, fill=color)


def plot_metrics(metrics_json: str | os.PathLike, png: str | os.PathLike) -> bool:
    """Draw the loss and metric curves of `metrics_json` into `png` (atomically).

    Returns:
        False (and writes nothing) when the file has no loss or metric values.
    """
    series = read_metric_series(metrics_json)
    panels = [
        ("loss", {k: v for k, v in series.items() if k in _LOSSES}),
        ("evaluation", {k: v for k, v in series.items() if k.endswith(_METRIC_SUFFIXES)}),
    ]
    panels = [(title, curves) for title, curves in panels if curves]
    if not panels:
        return False
    image = Image.new("RGB", (_PANEL[0], _PANEL[1] * len(panels)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    iterations = [it for _, curves in panels for values in curves.values() for it, _ in values]
    x_range = (min(iterations), max(iterations))  # one iteration axis for every panel
    for i, (title, curves) in enumerate(panels):
        _draw_panel(draw, i * _PANEL[1], title, curves, x_range)
    with atomic_open(png, "wb") as f:
        image.save(f, format="PNG")
    return True

"""Per-category AP tables and precision-recall curve plots from COCOeval's accumulated arrays.

The plots are drawn with Pillow (already a dependency; no matplotlib needed): one chart of the
overall PR curves at IoU 0.50, 0.75 and averaged over 0.50:0.95, and a grid with one small chart
per category (PR at IoU 0.50 and 0.50:0.95, titled with its AP), so that the categories where a
model fails stand out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from masktron.evaluation.coco_engine import CocoEvalArrays, per_category_ap, summarize
from masktron.evaluation.table import format_table
from masktron.utils.file_io import atomic_open

_COLOURS = {"IoU 0.50": (31, 119, 180), "IoU 0.75": (44, 160, 44), "IoU 0.50:0.95": (214, 39, 40)}
_AREAS = {"all": "", "small": "s", "medium": "m", "large": "l"}


def _curve(arrays: CocoEvalArrays, thresholds: slice, k: Any = slice(None)) -> np.ndarray:
    """(R,) precision at the recall thresholds (all areas, last detection limit), averaged over
    the IoU `thresholds` and the categories `k` that have ground truth (NaN where none has)."""
    p = arrays.precision[thresholds, :, k, 0, -1]  # (T, R, K) or (T, R); -1: no ground truth
    if p.ndim == 2:
        p = p[:, :, None]
    p = np.moveaxis(p, 1, 0).reshape(p.shape[1], -1)  # (T, R, K) -> (R, T*K)
    valid = p > -1
    count = valid.sum(axis=1)
    mean = np.where(valid, p, 0.0).sum(axis=1) / np.maximum(count, 1)
    return np.where(count > 0, mean, np.nan)


def pr_curves(arrays: CocoEvalArrays, k: Any = slice(None)) -> dict[str, np.ndarray]:
    """{"IoU 0.50", "IoU 0.75", "IoU 0.50:0.95": (R,) precision} for category index `k` (all)."""
    t50 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(arrays.iou_thresholds - 0.75)))
    return {
        "IoU 0.50": _curve(arrays, slice(t50, t50 + 1), k),
        "IoU 0.75": _curve(arrays, slice(t75, t75 + 1), k),
        "IoU 0.50:0.95": _curve(arrays, slice(None), k),
    }


def per_category_figures(
    arrays: CocoEvalArrays, names: Mapping[Any, str], counts: Mapping[Any, int] | None = None
) -> list[list[Any]]:
    """Rows [name, AP, AP50, AP75, APs, APm, APl, AR, #gt] in percent, one per category,
    worst AP first (categories without ground truth last, NaN)."""
    rows = []
    for k, cat_id in enumerate(arrays.cat_ids):
        one = CocoEvalArrays(
            precision=arrays.precision[:, :, k : k + 1],
            recall=arrays.recall[:, k : k + 1],
            iou_thresholds=arrays.iou_thresholds,
            recall_thresholds=arrays.recall_thresholds,
            cat_ids=[cat_id],
            area_labels=arrays.area_labels,
            max_dets=arrays.max_dets,
        )
        figures = summarize(one, "keypoints" if "small" not in arrays.area_labels else "bbox")
        ar_key = "AR" if "AR" in figures else f"AR{arrays.max_dets[-1]}"
        row: list[Any] = [names.get(cat_id, str(cat_id))]
        row += [figures.get(f"AP{suffix}", float("nan")) for suffix in ("", "50", "75")]
        row += [figures.get(f"AP{_AREAS[a]}", float("nan")) for a in ("small", "medium", "large")]
        row += [figures[ar_key], None if counts is None else counts.get(cat_id, 0)]
        rows.append(row)
    return sorted(rows, key=lambda r: (np.isnan(r[1]), r[1]))


def per_category_detail_table(rows: list[list[Any]]) -> str:
    headers = ["category", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "#gt"]
    return format_table(rows, headers, align="left")


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _chart(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    curves: Mapping[str, np.ndarray],
    recall: np.ndarray,
    title: str,
    *,
    axes_labels: bool,
) -> None:
    """PR curves in the pixel box (x0, y0, x1, y1): recall right, precision up, both 0..1."""
    x0, y0, x1, y1 = box
    size = max(10, (y1 - y0) // 14)
    draw.text((x0, y0), title, fill=(0, 0, 0), font=_font(size))
    top, left = y0 + size + 6, x0 + (4 * size if axes_labels else 4)
    bottom = y1 - (2 * size if axes_labels else 4)
    draw.rectangle((left, top, x1 - 4, bottom), outline=(0, 0, 0))
    width, height = x1 - 4 - left, bottom - top
    for tick in (0.25, 0.5, 0.75):
        draw.line((left + tick * width, top, left + tick * width, bottom), fill=(225, 225, 225))
        draw.line((left, bottom - tick * height, x1 - 4, bottom - tick * height), fill=(225,) * 3)
    if axes_labels:
        font = _font(size)
        for tick in (0.0, 0.5, 1.0):
            label = f"{tick:.1f}"
            draw.text(
                (left - 3 * size, bottom - tick * height - size // 2),
                label,
                font=font,
                fill=(0, 0, 0),
            )
            draw.text((left + tick * width - size, bottom + 4), label, font=font, fill=(0, 0, 0))
        draw.text(
            (left + width // 2 - 2 * size, bottom + size + 2), "recall", font=font, fill=(0, 0, 0)
        )
    for label, precision in curves.items():
        points = [
            (left + float(r) * width, bottom - float(p) * height)
            for r, p in zip(recall, precision)
            if not np.isnan(p)
        ]
        if len(points) > 1:
            draw.line(points, fill=_COLOURS[label], width=2 if axes_labels else 1)


def _save(image: Image.Image, path: str) -> None:
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")


def save_pr_plots(
    arrays: CocoEvalArrays, names: Mapping[Any, str], folder: str, task: str
) -> list[str]:
    """Write `<task>_pr.png` (overall curves) and `<task>_pr_per_class.png` (one chart per
    category with ground truth, worst AP first) to `folder`; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    recall = arrays.recall_thresholds
    overall = Image.new("RGB", (640, 520), "white")
    draw = ImageDraw.Draw(overall)
    ap = summarize(arrays, task)["AP"]
    _chart(
        draw,
        (10, 10, 630, 480),
        pr_curves(arrays),
        recall,
        f"{task}: precision vs recall (AP {ap:.1f})",
        axes_labels=True,
    )
    for i, (label, colour) in enumerate(_COLOURS.items()):
        draw.line((20 + 200 * i, 500, 50 + 200 * i, 500), fill=colour, width=3)
        draw.text((56 + 200 * i, 492), label, fill=(0, 0, 0), font=_font(14))
    paths = [os.path.join(folder, f"{task}_pr.png")]
    _save(overall, paths[0])

    per_cat = list(per_category_ap(arrays).values())  # worst first; none without ground truth
    cells = sorted((c for c in enumerate(per_cat) if not np.isnan(c[1])), key=lambda c: c[1])
    columns = min(8, len(cells)) or 1
    rows = (len(cells) + columns - 1) // columns or 1
    grid = Image.new("RGB", (columns * 180, rows * 150), "white")
    draw = ImageDraw.Draw(grid)
    for n, (k, cat_ap) in enumerate(cells):
        x, y = (n % columns) * 180, (n // columns) * 150
        curves = {key: v for key, v in pr_curves(arrays, k).items() if key != "IoU 0.75"}
        name = names.get(arrays.cat_ids[k], str(arrays.cat_ids[k]))[:18]
        _chart(
            draw,
            (x + 4, y + 4, x + 176, y + 146),
            curves,
            recall,
            f"{name} {cat_ap:.1f}",
            axes_labels=False,
        )
    paths.append(os.path.join(folder, f"{task}_pr_per_class.png"))
    _save(grid, paths[1])
    return paths

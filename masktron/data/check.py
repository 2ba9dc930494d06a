"""Checking a training set before the first iteration: every problem at once, not the first only.

`check_dataset(dicts)` looks at every image and annotation of Detectron2-format dataset dicts:

- the image file exists, and its size (from the header; with `decode=True` from decoding every
  pixel, which also finds truncated files) equals the dict's `height`/`width`;
- each box is 4 finite numbers with a positive width and height that overlaps the image;
- each polygon has an even number (>= 6) of finite coordinates; each RLE has the image's size
  and ASCII `counts` whose runs fit its height x width pixels (what evaluation requires);
- each `category_id` is in `[0, num_classes)`.

Fatal problems (a missing or undecodable image, a size mismatch, a malformed segmentation or
box, an unknown category) stop training with a report of all of them; boxes of zero size or
outside the image, which training would silently drop, are reported as warnings.
`drop_bad(dicts, report)` removes the bad annotations (and unreadable images) instead: the
`--skip-bad` option of `masktron train`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from masktron.structures import BoxMode

__all__ = ["DataProblem", "DataReport", "check_dataset", "drop_bad"]

_SHOWN = 20  # problems listed in a message; the rest are counted


@dataclass(frozen=True)
class DataProblem:
    """One problem: the image file, the annotation index (None: the image), what is wrong."""

    file_name: str
    annotation: int | None
    reason: str
    fatal: bool = True

    def __str__(self) -> str:
        where = self.file_name if self.annotation is None else (
            f"{self.file_name}: annotation {self.annotation}"
        )  # fmt: skip
        return f"{where}: {self.reason}"


@dataclass
class DataReport:
    """What `check_dataset` found."""

    images: int = 0
    annotations: int = 0
    problems: list[DataProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[DataProblem]:
        return [p for p in self.problems if p.fatal]

    @property
    def warnings(self) -> list[DataProblem]:
        return [p for p in self.problems if not p.fatal]

    def summary(self, name: str = "the training set", shown: int = _SHOWN) -> str:
        """A message listing the first `shown` problems and counting the rest."""
        head = (
            f"{name}: {len(self.errors)} error(s), {len(self.warnings)} warning(s) in "
            f"{self.images} images / {self.annotations} annotations"
        )
        lines = [head] + [
            f"  {'error' if p.fatal else 'warning'}: {p}" for p in self.problems[:shown]
        ]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        return "\n".join(lines)


def _finite(values: Any, count: int | None = None) -> bool:
    if not isinstance(values, (list, tuple)) or (count is not None and len(values) != count):
        return False
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_box(anno: dict, height: int, width: int) -> tuple[str, bool] | None:
    raw = anno.get("bbox")
    if not _finite(raw, 4):
        return f"'bbox' must be 4 finite numbers, got {raw!r}", True
    box = list(raw)  # type: ignore[arg-type]  # _finite checked it is a list of 4 numbers
    try:
        x0, y0, x1, y1 = BoxMode.convert(box, anno.get("bbox_mode", BoxMode.XYWH_ABS),
                                         BoxMode.XYXY_ABS)  # fmt: skip
    except (ValueError, TypeError, AssertionError) as e:
        return f"'bbox_mode' cannot be used ({e})", True
    if x1 <= x0 or y1 <= y0:
        return f"box {box} has zero or negative size (training would drop it)", False
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return f"box {box} lies outside the {width}x{height} image", False
    return None


def _check_segmentation(segm: Any, height: int, width: int) -> str | None:
    from masktron.evaluation.rle import check_compressed_rles

    if isinstance(segm, list):
        for k, poly in enumerate(segm):
            if not _finite(poly) or len(poly) < 6 or len(poly) % 2:
                return f"polygon {k} must be an even number (>= 6) of finite coordinates"
        return None if segm else "an empty polygon list"
    if isinstance(segm, dict):
        size: Any = segm.get("size")
        counts = segm.get("counts")
        if not _finite(size, 2) or [int(size[0]), int(size[1])] != [height, width]:
            return f"RLE size {size!r} differs from the image's [{height}, {width}]"
        if isinstance(counts, list):
            ok = (
                all(isinstance(c, int) and c >= 0 for c in counts) and sum(counts) == height * width
            )
            return None if ok else f"uncompressed RLE counts must sum to {height * width}"
        if isinstance(counts, str) and not counts.isascii():
            return "RLE 'counts' has non-ASCII characters"
        if not isinstance(counts, (str, bytes)):
            return f"RLE 'counts' must be a string or a list, got {type(counts).__name__}"
        if check_compressed_rles([{"size": [height, width], "counts": counts}], [(height, width)])[
            0
        ]:
            return f"RLE 'counts' is corrupt or cut short (runs must fit {height}x{width} pixels)"
        return None
    return f"'segmentation' must be polygons or an RLE dict, got {type(segm).__name__}"


def _check_image(record: dict, decode: bool) -> str | None:
    from masktron.data.image_io import get_image_size, read_image

    path = record.get("file_name", "")
    if not os.path.isfile(path):
        return "image file not found"
    try:
        size = read_image(path).shape[:2] if decode else get_image_size(path)
    except Exception as e:  # any failure to read is this image's problem
        return " ".join(str(e).replace(f"{path}: ", "").split()) or type(e).__name__
    expected = (record.get("height"), record.get("width"))
    if None not in expected and tuple(size) != expected:
        return f"the file is {size[1]}x{size[0]}, the dataset says {expected[1]}x{expected[0]}"
    return None


def check_dataset(
    dicts: Sequence[dict],
    *,
    num_classes: int | None = None,
    decode: bool = False,
    progress: bool = True,
) -> DataReport:
    """Check every image and annotation of `dicts` (see the module docstring).

    Args:
        dicts: Detectron2-format dataset dicts.
        num_classes: category ids must be below this (None: not checked).
        decode: decode every image fully (slow; finds truncated files) instead of its header.
        progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    report = DataReport(images=len(dicts))
    for record in tqdm(dicts, desc="check data", unit="img", disable=not progress):
        name = str(record.get("file_name", "?"))
        bad_image = _check_image(record, decode)
        if bad_image:
            report.problems.append(DataProblem(name, None, bad_image))
        height, width = record.get("height", 0), record.get("width", 0)
        for i, anno in enumerate(record.get("annotations", [])):
            report.annotations += 1
            found = _check_box(anno, height, width)
            if found:
                report.problems.append(DataProblem(name, i, found[0], found[1]))
            category = anno.get("category_id")
            if not isinstance(category, int) or category < 0 or (
                num_classes is not None and category >= num_classes
            ):  # fmt: skip
                allowed = f"0..{num_classes - 1}" if num_classes else "an integer >= 0"
                report.problems.append(
                    DataProblem(name, i, f"category_id {category!r} is not in {allowed}")
                )
            if anno.get("segmentation"):
                bad = _check_segmentation(anno["segmentation"], height, width)
                if bad:
                    report.problems.append(DataProblem(name, i, bad))
    return report


def drop_bad(dicts: Sequence[dict], report: DataReport) -> tuple[list[dict], int, int]:
    """`dicts` without the annotations (and unreadable images) that `report` lists.

    Returns:
        (the kept dicts, images dropped, annotations dropped).
    """
    bad_images = {p.file_name for p in report.problems if p.annotation is None}
    bad_annos: dict[str, set[int]] = {}
    for p in report.problems:
        if p.annotation is not None:
            bad_annos.setdefault(p.file_name, set()).add(p.annotation)
    kept: list[dict] = []
    dropped_annos = 0
    for record in dicts:
        name = str(record.get("file_name", "?"))
        if name in bad_images:
            continue
        skip = bad_annos.get(name, set())
        if skip:
            record = dict(record)
            annos = record.get("annotations", [])
            record["annotations"] = [a for i, a in enumerate(annos) if i not in skip]
            dropped_annos += len(annos) - len(record["annotations"])
        kept.append(record)
    return kept, len(dicts) - len(kept), dropped_annos

"""`masktron predict --gt`: number the results with the ground truth's image ids.

Without it, `predict` numbers images 1..N in the order it reads them, which scores nothing
against a COCO file whose ids differ (or scores the wrong images). With `--gt val.json` (or a
registered dataset's name) each input image is found by file name in the ground truth and its
results get that image's id, so `masktron eval --gt val.json --results out/results.json` works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from masktron.cli.main import CommandError

__all__ = ["ground_truth_ids"]


def _images_of(gt: str) -> dict[str, tuple[Any, int, int]]:
    """file name (basename) -> (image id, height, width) of a COCO file or a dataset."""
    table: dict[str, tuple[Any, int, int]] = {}
    if os.path.isfile(gt):
        try:
            with open(gt, encoding="utf-8") as f:
                images = json.load(f).get("images")
        except (OSError, ValueError, AttributeError) as e:
            raise CommandError(f"--gt {gt}: not a COCO JSON file ({e})") from None
        if not isinstance(images, list):
            raise CommandError(f"--gt {gt}: no 'images' list (is it COCO instances JSON?)")
        for i, im in enumerate(images):
            if not isinstance(im, dict) or not {"id", "file_name"} <= im.keys():
                raise CommandError(f"--gt {gt}: images[{i}] needs 'id' and 'file_name'")
            size = (int(im.get("height", 0)), int(im.get("width", 0)))
            table[os.path.basename(im["file_name"])] = (im["id"], *size)
        return table
    from masktron.data import DatasetCatalog

    if gt not in DatasetCatalog:
        raise CommandError(f"--gt {gt}: neither a file nor a registered dataset")
    for d in DatasetCatalog.get(gt):
        size = (int(d.get("height", 0)), int(d.get("width", 0)))
        table[os.path.basename(d["file_name"])] = (d["image_id"], *size)
    return table


def ground_truth_ids(gt: str, paths: Sequence[str]) -> list[Any]:
    """The ground truth's image id of each image in `paths` (matched by file name).

    Raises:
        CommandError: an image is not in the ground truth, or its size is not the one the
            ground truth records (results would not line up with its masks).
    """
    from masktron.data.image_io import get_image_size

    table = _images_of(gt)
    ids = []
    for path in paths:
        name = os.path.basename(path)
        if name not in table:
            known = ", ".join(sorted(table)[:3]) or "none"
            raise CommandError(
                f"{path}: no image named {name!r} in the ground truth {gt} (it has {known}, ...)"
            )
        image_id, height, width = table[name]
        size = get_image_size(path)
        if height and width and size != (height, width):
            raise CommandError(
                f"{path} is {size[0]}x{size[1]} (height x width) but {gt} records "
                f"{height}x{width} for image {image_id}: predict on the images the ground "
                "truth was annotated on (not resized copies)"
            )
        ids.append(image_id)
    return ids

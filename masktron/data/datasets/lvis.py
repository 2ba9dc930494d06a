"""LVIS v1 JSON -> Detectron2 dataset dicts, and `register_lvis_instances`.

As Detectron2's `load_lvis_json`: one dict per image sorted by id, `file_name` = image_root /
the last two parts of the image's `coco_url` (LVIS v1 shares COCO 2017's train2017/ and
val2017/ folders), `height`, `width`, `image_id`, the image's `neg_category_ids` and
`not_exhaustive_category_ids`; annotations with `bbox` (XYWH, `BoxMode.XYWH_ABS`), `category_id`
- 1 (LVIS ids are 1..N) and `segmentation` polygons (those with fewer than 3 points or an odd
count dropped). The metadata gets `thing_classes` (the JSON's names in id order) when loaded.
"""

from __future__ import annotations

import os
from typing import Any

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.format_utils import (
    DatasetFormatError,
    as_number_list,
    read_json,
    require,
)
from masktron.structures import BoxMode

__all__ = ["load_lvis_json", "register_lvis_instances"]


def _file_name(image: dict, image_root: str, where: str) -> str:
    if "file_name" in image:  # LVIS v0.5
        return os.path.join(image_root, image["file_name"])
    url = require(image, "coco_url", where, str)
    return os.path.join(image_root, *url.split("/")[-2:])


def load_lvis_json(
    json_file: str | os.PathLike, image_root: str | os.PathLike, dataset_name: str | None = None
) -> list[dict]:
    """Read an LVIS JSON file into dataset dicts (see the module docstring)."""
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    data = read_json(json_file)
    categories = sorted(require(data, "categories", json_file, list), key=lambda c: c["id"])
    if [c["id"] for c in categories] != list(range(1, len(categories) + 1)):
        raise DatasetFormatError(f"{json_file}: LVIS category ids must be 1..{len(categories)}")
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(thing_classes=[c["name"] for c in categories])
    annotations: dict[Any, list[dict]] = {}
    for i, ann in enumerate(require(data, "annotations", json_file, list)):
        where = f"{json_file}: annotations[{i}]"
        obj = {
            "bbox": as_number_list(require(ann, "bbox", where), where, "bbox", 4),
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": int(require(ann, "category_id", where)) - 1,
        }
        polygons = [p for p in ann.get("segmentation", []) if len(p) % 2 == 0 and len(p) >= 6]
        if polygons:
            obj["segmentation"] = polygons
        annotations.setdefault(require(ann, "image_id", where), []).append(obj)
    records = []
    images = require(data, "images", json_file, list)
    for i, image in enumerate(sorted(images, key=lambda im: im["id"])):
        where = f"{json_file}: images[{i}]"
        records.append(
            {
                "file_name": _file_name(image, image_root, where),
                "height": require(image, "height", where, int),
                "width": require(image, "width", where, int),
                "image_id": image["id"],
                "neg_category_ids": image.get("neg_category_ids", []),
                "not_exhaustive_category_ids": image.get("not_exhaustive_category_ids", []),
                "annotations": annotations.get(image["id"], []),
            }
        )
    return records


def register_lvis_instances(
    name: str, metadata: dict, json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register an LVIS dataset: `DatasetCatalog.get(name)` loads it; `evaluator_type` "lvis"."""
    DatasetCatalog.register(name, lambda: load_lvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=os.fspath(json_file),
        image_root=os.fspath(image_root),
        evaluator_type="lvis",
        **metadata,
    )

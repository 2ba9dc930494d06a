"""VGG Image Annotator (VIA) JSON -> dataset dicts: the format of Detectron2's balloon tutorial.

Accepted files: VIA's "export annotations as JSON" (an object keyed by `<filename><size>`, each
entry with `filename` and `regions`, a dict or a list) and VIA 2 project files (the same entries
under `_via_img_metadata`). Region shapes: `polygon` (`all_points_x`/`all_points_y`), `rect`
(`x`, `y`, `width`, `height`), and `circle`/`ellipse` (approximated by 32-gon polygons).

As in the tutorial: polygon points get +0.5 (VIA stores integer pixel indices; +0.5 makes them
continuous coordinates at pixel centres), the box is the min/max of the stored points (XYXY_ABS),
`image_id` is the entry's position in the file, and `height`/`width` come from the image file
(EXIF orientation applied), so every image must exist when the dataset is loaded.

Classes: by default every region is class 0. With `class_attribute`, each region's
`region_attributes[class_attribute]` names its class, looked up in `thing_classes` (or, if
those are not given, the sorted set of names found in the file).
"""

from __future__ import annotations

import math
import os
from typing import Any

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.format_utils import (
    DatasetFormatError,
    as_number_list,
    read_json,
    require,
)
from masktron.data.image_io import get_image_size
from masktron.structures import BoxMode

__all__ = ["load_via_json", "register_via_instances"]

_ELLIPSE_POINTS = 32


def _entries(data: Any, json_file: str) -> list[dict]:
    if isinstance(data, dict) and "_via_img_metadata" in data:
        data = data["_via_img_metadata"]
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{json_file}: expected a VIA JSON object of image entries")
    return list(data.values())


def _regions(entry: dict, where: str) -> list[dict]:
    regions = entry.get("regions", [])
    if isinstance(regions, dict):
        return list(regions.values())
    if isinstance(regions, list):
        return regions
    raise DatasetFormatError(f"{where}: field 'regions' should be a list or an object")


def _shape_points(shape: dict, where: str) -> tuple[list[float], list[float]]:
    """The shape's outline as x and y lists of (integer-pixel) coordinates."""
    kind = require(shape, "name", where, str)
    if kind == "polygon":
        px = as_number_list(require(shape, "all_points_x", where), where, "all_points_x")
        py = as_number_list(require(shape, "all_points_y", where), where, "all_points_y")
        if len(px) != len(py):
            raise DatasetFormatError(
                f"{where}: all_points_x has {len(px)} values but all_points_y has {len(py)}"
            )
        if len(px) < 3:
            raise DatasetFormatError(f"{where}: a polygon needs 3+ points, got {len(px)}")
        return px, py
    if kind == "rect":
        x, y, w, h = (
            float(require(shape, k, where, (int, float))) for k in ("x", "y", "width", "height")
        )
        return [x, x + w, x + w, x], [y, y, y + h, y + h]
    if kind in ("circle", "ellipse"):
        cx, cy = (float(require(shape, k, where, (int, float))) for k in ("cx", "cy"))
        if kind == "circle":
            rx = ry = float(require(shape, "r", where, (int, float)))
            theta = 0.0
        else:
            rx, ry = (float(require(shape, k, where, (int, float))) for k in ("rx", "ry"))
            theta = float(shape.get("theta", 0.0))
        angles = [2 * math.pi * k / _ELLIPSE_POINTS for k in range(_ELLIPSE_POINTS)]
        c, s = math.cos(theta), math.sin(theta)
        px = [cx + rx * math.cos(a) * c - ry * math.sin(a) * s for a in angles]
        py = [cy + rx * math.cos(a) * s + ry * math.sin(a) * c for a in angles]
        return px, py
    raise DatasetFormatError(
        f"{where}: region shape {kind!r} is not supported (polygon, rect, circle, ellipse)"
    )


def _class_name(region: dict, class_attribute: str, where: str) -> str:
    attrs = region.get("region_attributes", {})
    if not isinstance(attrs, dict) or class_attribute not in attrs:
        raise DatasetFormatError(f"{where}: region_attributes has no {class_attribute!r}")
    value = attrs[class_attribute]
    if isinstance(value, dict):  # VIA checkbox attributes: {"name": true, ...}
        chosen = [k for k, v in value.items() if v]
        if len(chosen) != 1:
            raise DatasetFormatError(
                f"{where}: region_attributes[{class_attribute!r}] should select one class, "
                f"got {value!r}"
            )
        value = chosen[0]
    if not isinstance(value, str) or not value:
        raise DatasetFormatError(
            f"{where}: region_attributes[{class_attribute!r}] should be a class name, got {value!r}"
        )
    return value


def load_via_json(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    *,
    class_attribute: str | None = None,
    thing_classes: list[str] | None = None,
) -> list[dict]:
    """Read a VIA JSON file into dataset dicts (see the module docstring).

    Args:
        json_file: the VIA export or project file.
        image_root: directory of the images named by the entries' `filename`.
        dataset_name: when classes are derived from the file, they are stored as this
            dataset's `thing_classes` metadata.
        class_attribute: region attribute that holds the class name; None: one class.
        thing_classes: the class names, in contiguous-id order.
    """
    json_file = os.fspath(json_file)
    entries = _entries(read_json(json_file, "VIA annotation file"), json_file)
    parsed = []
    names: set[str] = set()
    for idx, entry in enumerate(entries):
        filename = require(entry, "filename", f"{json_file}: entry {idx}", str)
        objs = []
        for k, region in enumerate(_regions(entry, f"{json_file}: {filename}")):
            where = f"{json_file}: {filename} region {k}"
            px, py = _shape_points(require(region, "shape_attributes", where, dict), where)
            name = _class_name(region, class_attribute, where) if class_attribute else None
            if name is not None:
                names.add(name)
            poly = [v for x, y in zip(px, py) for v in (x + 0.5, y + 0.5)]
            objs.append(
                {
                    "bbox": [min(px), min(py), max(px), max(py)],
                    "bbox_mode": BoxMode.XYXY_ABS,
                    "segmentation": [poly],
                    "category_id": name,
                    "iscrowd": 0,
                }
            )
        parsed.append((idx, filename, objs))

    if class_attribute is None:
        classes = list(thing_classes) if thing_classes else ["object"]
    elif thing_classes:
        classes = list(thing_classes)
    else:
        classes = sorted(names)
        if dataset_name is not None:
            MetadataCatalog.get(dataset_name).thing_classes = classes
    index = {name: i for i, name in enumerate(classes)}

    records = []
    for idx, filename, objs in parsed:
        file_name = os.path.join(image_root, filename)
        try:
            height, width = get_image_size(file_name)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{json_file}: entry {filename!r}: {e}") from e
        for k, obj in enumerate(objs):
            if obj["category_id"] is None:
                obj["category_id"] = 0
            elif obj["category_id"] not in index:
                raise DatasetFormatError(
                    f"{json_file}: {filename} region {k}: class {obj['category_id']!r} is not "
                    f"in thing_classes {classes}"
                )
            else:
                obj["category_id"] = index[obj["category_id"]]
        records.append(
            {
                "file_name": file_name,
                "image_id": idx,
                "height": height,
                "width": width,
                "annotations": objs,
            }
        )
    return records


def register_via_instances(
    name: str,
    metadata: dict,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    *,
    class_attribute: str | None = None,
) -> None:
    """Register a VIA-annotated dataset (`metadata` may give `thing_classes`).

    Evaluation goes through `convert_to_coco_json` (`evaluator_type="coco"`, no `json_file`).
    """
    thing_classes = metadata.get("thing_classes")
    if thing_classes is None and class_attribute is None:
        metadata = {**metadata, "thing_classes": ["object"]}
    DatasetCatalog.register(
        name,
        lambda: load_via_json(
            json_file,
            image_root,
            name,
            class_attribute=class_attribute,
            thing_classes=thing_classes,
        ),
    )
    MetadataCatalog.get(name).set(image_root=image_root, evaluator_type="coco", **metadata)

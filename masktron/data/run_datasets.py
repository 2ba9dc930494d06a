"""Datasets that travel with a run's config: `DATASETS.REGISTER` and the class keys.

`masktron train --coco-dataset/--via-dataset/--png-dataset` registers datasets from files;
their specs are written into the run's `config.yaml` under `DATASETS.REGISTER`, and the class
names of the training set (with each class's category id in the dataset) under
`DATASETS.THING_CLASSES` / `DATASETS.THING_DATASET_IDS`. `masktron predict`, `eval` and
`export` call `register_config_datasets(cfg)` and `config_metadata(cfg)`, so an output folder
is enough to use the model it holds:

    masktron eval --config out/config.yaml --weights out/model_best.pth

A spec is a plain dict: `{"format": "coco", "name": ..., "json_file": ..., "image_root": ...}`,
`{"format": "via", ..., "class_attribute": ..., "classes": [...]}` or
`{"format": "png", "name": ..., "root": ..., "classes": [...]}`; paths are absolute.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from masktron.data.catalog import DatasetCatalog, Metadata, MetadataCatalog

__all__ = [
    "DatasetSpecError",
    "config_metadata",
    "dataset_spec",
    "register_config_datasets",
    "register_dataset_spec",
    "training_classes",
]

logger = logging.getLogger(__name__)

FORMATS = ("coco", "via", "png")
# Specs registered by this process: name -> spec (registering the same spec twice is a no-op).
_REGISTERED: dict[str, dict[str, Any]] = {}


class DatasetSpecError(ValueError):
    """A dataset spec that cannot be registered (bad format, name taken, ...)."""


def dataset_spec(
    fmt: str,
    name: str,
    paths: Sequence[str],
    *,
    class_attribute: str | None = None,
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """The spec of a dataset given on the command line (paths made absolute).

    Args:
        fmt: "coco" (paths: JSON, image folder), "via" (JSON, image folder) or "png" (root).
        class_attribute: VIA only: the region attribute that holds each region's class name.
        classes: class names in contiguous-id order (VIA and PNG; COCO files name their own).
    """
    if fmt not in FORMATS:
        raise DatasetSpecError(f"dataset {name!r}: format must be one of {FORMATS}, got {fmt!r}")
    keys = ("root",) if fmt == "png" else ("json_file", "image_root")
    if len(paths) != len(keys):
        raise DatasetSpecError(f"dataset {name!r}: {fmt} needs {len(keys)} path(s), got {paths}")
    spec: dict[str, Any] = {"format": fmt, "name": name}
    spec.update({k: os.path.abspath(p) for k, p in zip(keys, paths)})
    if class_attribute:
        if fmt != "via":
            raise DatasetSpecError(f"dataset {name!r}: a class attribute is for VIA datasets")
        spec["class_attribute"] = class_attribute
    if classes:
        if fmt == "coco":
            raise DatasetSpecError(
                f"dataset {name!r}: a COCO file names its classes in 'categories'"
            )
        spec["classes"] = [str(c) for c in classes]
    return spec


def register_dataset_spec(spec: Mapping[str, Any]) -> None:
    """Register `spec`'s dataset under its name (no-op if this spec was registered already)."""
    from masktron.data.datasets import (
        register_coco_instances,
        register_png_mask_instances,
        register_via_instances,
    )

    spec = dict(spec)
    name, fmt = str(spec.get("name", "")), spec.get("format")
    if _REGISTERED.get(name) == spec:
        return
    if name in DatasetCatalog:
        raise DatasetSpecError(f"dataset {name!r} is already registered; pick another name")
    metadata = {"thing_classes": list(spec["classes"])} if spec.get("classes") else {}
    if fmt == "coco":
        register_coco_instances(name, metadata, spec["json_file"], spec["image_root"])
    elif fmt == "via":
        register_via_instances(
            name,
            metadata,
            spec["json_file"],
            spec["image_root"],
            class_attribute=spec.get("class_attribute") or None,
        )
    elif fmt == "png":
        register_png_mask_instances(name, metadata, spec["root"])
    else:
        raise DatasetSpecError(f"dataset {name!r}: unknown format {fmt!r} (one of {FORMATS})")
    _REGISTERED[name] = spec


def register_config_datasets(cfg: Any) -> list[str]:
    """Register the `DATASETS.REGISTER` entries of `cfg` not registered yet; returns their names.

    A name already registered with another spec (e.g. a built-in one) is left as it is.
    """
    names = []
    for spec in cfg.DATASETS.REGISTER:
        name = str(spec.get("name", ""))
        if name in DatasetCatalog and _REGISTERED.get(name) != dict(spec):
            continue
        register_dataset_spec(spec)
        names.append(name)
    return names


def forget_registered(name: str) -> None:
    """Unregister a dataset registered from a spec (tests, long-lived processes)."""
    _REGISTERED.pop(name, None)
    for catalog in (DatasetCatalog, MetadataCatalog):
        if name in catalog:
            catalog.remove(name)


# Bytes read at each end of a COCO file to find its "categories" without parsing it whole.
_END_BYTES = 1 << 20


def _categories_near_an_end(json_file: str) -> list | None:
    """The "categories" list when it sits within `_END_BYTES` of either end of the file
    (where exporters put it), else None."""
    size = os.path.getsize(json_file)
    with open(json_file, "rb") as f:
        head = f.read(_END_BYTES)
        f.seek(max(size - _END_BYTES, 0))
        tail = f.read()
    for chunk, find in ((tail, str.rfind), (head, str.find)):
        text = chunk.decode("utf-8", "ignore")
        k = find(text, '"categories"')
        start = text.find("[", k) if k >= 0 else -1
        try:
            found, _ = json.JSONDecoder().raw_decode(text, start) if start >= 0 else (None, 0)
        except ValueError:
            continue
        if isinstance(found, list) and all(isinstance(c, dict) and "id" in c for c in found):
            return found
    return None


def _coco_categories(json_file: str) -> tuple[list[str], list[int]]:
    """(names, ids) of a COCO file's categories, sorted by id, reading as little as it can."""
    categories = _categories_near_an_end(json_file)
    if categories is None:
        with open(json_file, encoding="utf-8") as f:
            categories = json.load(f).get("categories") or []
    categories = sorted(categories, key=lambda c: c["id"])
    return [str(c["name"]) for c in categories], [int(c["id"]) for c in categories]


def training_classes(dataset_name: str) -> tuple[list[str], list[int]]:
    """(class names by contiguous id, each class's category id in the dataset) of a dataset.

    Reads the metadata; a COCO file's categories are read from the file when it was not loaded
    yet, a VIA dataset whose classes come from its regions is loaded. Ids default to 0..K-1
    (VIA/PNG datasets have no ids of their own).
    """
    meta = MetadataCatalog.get(dataset_name)
    classes = meta.get("thing_classes")
    if classes is None and meta.get("json_file") and meta.get("evaluator_type") == "coco":
        return _coco_categories(meta.json_file)
    if classes is None and dataset_name in DatasetCatalog:
        DatasetCatalog.get(dataset_name)  # fills thing_classes (e.g. VIA with class_attribute)
        classes = meta.get("thing_classes")
    if classes is None:
        return [], []
    to_contiguous = meta.get("thing_dataset_id_to_contiguous_id") or {}
    ids = {v: int(k) for k, v in to_contiguous.items()}
    return list(classes), [ids.get(i, i) for i in range(len(classes))]


def config_metadata(cfg: Any) -> Metadata | None:
    """The metadata to label a model's outputs with: the config's `DATASETS.THING_CLASSES`
    (and dataset ids) when set, else the metadata of the first TEST (or TRAIN) dataset."""
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    catalog = MetadataCatalog.get(names[0]) if names else None
    classes = list(cfg.DATASETS.THING_CLASSES)
    if not classes:
        return catalog
    ids = list(cfg.DATASETS.THING_DATASET_IDS) or list(range(len(classes)))
    if len(ids) != len(classes):
        raise ValueError(
            f"DATASETS.THING_DATASET_IDS has {len(ids)} ids for {len(classes)} THING_CLASSES"
        )
    fields: dict[str, Any] = {}
    if catalog is not None and catalog.get("thing_classes") == classes:
        fields = {k: v for k, v in catalog.as_dict().items() if k != "name"}
    fields["thing_classes"] = classes
    fields["thing_dataset_id_to_contiguous_id"] = {d: i for i, d in enumerate(ids)}
    return Metadata(name=names[0] if names else "config", **fields)

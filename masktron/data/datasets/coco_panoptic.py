"""COCO panoptic segmentation datasets, in Detectron2's two layouts.

- "standard" (`register_coco_panoptic`): one dict per image with `pan_seg_file_name` (the PNG
  whose RGB encodes segment ids, id = R + 256 G + 256^2 B) and `segments_info` (category ids
  made contiguous over all 133 categories, with `isthing`).
- "separated" (`register_coco_panoptic_separated`, Panoptic FPN's training layout): the COCO
  *instances* annotations for things plus a semantic label PNG per image for stuff, where every
  thing pixel is 0, stuff classes are 1..53 and unlabeled pixels 255. Those PNGs are derived from
  the panoptic PNGs by `separate_coco_semantic_from_panoptic` (what Detectron2's
  `prepare_panoptic_fpn.py` script does). A `<name>_stuffonly` semantic dataset is registered
  too.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.coco import load_coco_json, load_sem_seg
from masktron.data.datasets.format_utils import DatasetFormatError, read_json, require
from masktron.utils.file_io import atomic_open

__all__ = [
    "load_coco_panoptic_json",
    "merge_to_panoptic",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "rgb2id",
    "separate_coco_semantic_from_panoptic",
]


def rgb2id(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 panoptic PNG -> (H, W) int64 segment ids (R + 256 G + 256^2 B)."""
    color = np.asarray(color, dtype=np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def load_coco_panoptic_json(
    json_file: str | os.PathLike, image_dir: str, gt_dir: str, meta: dict[str, Any]
) -> list[dict]:
    """Panoptic JSON + PNG folder -> dicts of the "standard" layout (see the module docstring).

    Args:
        json_file: e.g. annotations/panoptic_val2017.json.
        image_dir: the photos (a PNG `x.png` pairs with the image of the same id, or `x.jpg`).
        gt_dir: the panoptic PNGs.
        meta: with `thing_dataset_id_to_contiguous_id` and `stuff_dataset_id_to_contiguous_id`.
    """
    json_file = os.fspath(json_file)
    data = read_json(json_file, "COCO panoptic annotation file")
    annotations = require(data, "annotations", json_file, list)
    images = {img.get("id"): img for img in data.get("images", []) if isinstance(img, dict)}
    thing_map = meta["thing_dataset_id_to_contiguous_id"]
    stuff_map = meta["stuff_dataset_id_to_contiguous_id"]
    records = []
    for i, ann in enumerate(annotations):
        where = f"{json_file}: annotations[{i}]"
        image_id = require(ann, "image_id", where, (int, str))
        where += f" (image {image_id})"
        label_name = require(ann, "file_name", where, str)
        image_info = images.get(image_id, {})
        image_name = image_info.get("file_name", os.path.splitext(label_name)[0] + ".jpg")
        image_file = os.path.join(image_dir, image_name)
        label_file = os.path.join(gt_dir, label_name)
        for path, what in ((image_file, "image"), (label_file, "panoptic PNG")):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{where}: {what} not found: {path}")
        segments = []
        for k, seg in enumerate(require(ann, "segments_info", where, list)):
            seg = dict(seg)
            cat = require(seg, "category_id", f"{where} segments_info[{k}]", int)
            if cat in thing_map:
                seg["category_id"], seg["isthing"] = thing_map[cat], True
            elif cat in stuff_map:
                seg["category_id"], seg["isthing"] = stuff_map[cat], False
            else:
                raise DatasetFormatError(
                    f"{where} segments_info[{k}]: category_id {cat} is in neither the thing "
                    "nor the stuff categories of the metadata"
                )
            segments.append(seg)
        record = {
            "file_name": image_file,
            "image_id": image_id,
            "pan_seg_file_name": label_file,
            "segments_info": segments,
        }
        if "height" in image_info and "width" in image_info:
            record["height"], record["width"] = image_info["height"], image_info["width"]
        records.append(record)
    if not records:
        raise DatasetFormatError(f"{json_file}: no annotations")
    return records


def register_coco_panoptic(
    name: str,
    metadata: dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    instances_json: str | None = None,
) -> None:
    """Register the "standard" panoptic dataset `name` (Detectron2's API)."""
    DatasetCatalog.register(
        name, lambda: load_coco_panoptic_json(panoptic_json, image_root, panoptic_root, metadata)
    )
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        label_divisor=1000,
        **metadata,
    )


def register_coco_panoptic_separated(
    name: str,
    metadata: dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: str,
    instances_json: str,
) -> None:
    """Register `<name>_separated` (instances + stuff PNGs) and `<name>_stuffonly`.

    Args:
        metadata: e.g. `get_builtin_metadata("coco_panoptic_separated")`.
        sem_seg_root: the stuff label PNGs (see `separate_coco_semantic_from_panoptic`).
        instances_json: the COCO instances JSON of the same images.
    """
    panoptic_name = name + "_separated"
    DatasetCatalog.register(
        panoptic_name,
        lambda: merge_to_panoptic(
            load_coco_json(instances_json, image_root, panoptic_name),
            load_sem_seg(sem_seg_root, image_root),
        ),
    )
    MetadataCatalog.get(panoptic_name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        **metadata,
    )
    semantic_name = name + "_stuffonly"
    DatasetCatalog.register(semantic_name, lambda: load_sem_seg(sem_seg_root, image_root))
    MetadataCatalog.get(semantic_name).set(
        sem_seg_root=sem_seg_root,
        image_root=image_root,
        evaluator_type="sem_seg",
        ignore_label=255,
        **metadata,
    )


def merge_to_panoptic(detection_dicts: list[dict], sem_seg_dicts: list[dict]) -> list[dict]:
    """Join instance dicts with semantic dicts on `file_name` (each image needs both)."""
    by_file = {d["file_name"]: d for d in sem_seg_dicts}
    if not by_file:
        raise ValueError("merge_to_panoptic: no semantic segmentation entries")
    results = []
    for det in detection_dicts:
        if det["file_name"] not in by_file:
            raise FileNotFoundError(
                f"no semantic label file for image {det['file_name']} (image_id "
                f"{det.get('image_id')}): run separate_coco_semantic_from_panoptic first"
            )
        merged = copy.copy(det)
        merged.update(by_file[det["file_name"]])
        results.append(merged)
    return results


def separate_coco_semantic_from_panoptic(
    panoptic_json: str, panoptic_root: str, sem_seg_root: str, categories: list[dict]
) -> None:
    """Write Panoptic FPN's stuff label PNGs: things 0, stuff 1..K in `categories` order, 255 void.

    Args:
        panoptic_json: COCO panoptic JSON.
        panoptic_root: its PNGs.
        sem_seg_root: output folder (created); one `<name>.png` per panoptic PNG.
        categories: dicts with `id` and `isthing`, e.g. `COCO_CATEGORIES`.
    """
    stuff_ids = [c["id"] for c in categories if not c["isthing"]]
    if len(stuff_ids) > 254:
        raise ValueError(f"{len(stuff_ids)} stuff categories do not fit in a uint8 label map")
    id_map = {c["id"]: 0 for c in categories if c["isthing"]}
    id_map.update({cat_id: i + 1 for i, cat_id in enumerate(stuff_ids)})
    data = read_json(panoptic_json, "COCO panoptic annotation file")
    os.makedirs(sem_seg_root, exist_ok=True)
    for ann in tqdm(require(data, "annotations", panoptic_json, list), desc="stuff PNGs"):
        source = os.path.join(panoptic_root, ann["file_name"])
        with Image.open(source) as png:
            segment_ids = rgb2id(np.asarray(png.convert("RGB")))
        output = np.full(segment_ids.shape, 255, dtype=np.uint8)
        for seg in ann["segments_info"]:
            if seg["category_id"] not in id_map:
                raise DatasetFormatError(
                    f"{panoptic_json}: image {ann.get('image_id')}: unknown category_id "
                    f"{seg['category_id']}"
                )
            output[segment_ids == seg["id"]] = id_map[seg["category_id"]]
        target = os.path.join(sem_seg_root, ann["file_name"])
        with atomic_open(target, "wb") as f:
            Image.fromarray(output).save(f, format="PNG")

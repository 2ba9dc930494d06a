"""Registered dataset -> COCO JSON (for COCO evaluation of datasets that are not COCO files)."""

from __future__ import annotations

import datetime
import json
import logging
import os
from typing import Any

import numpy as np
import pycocotools.mask as mask_util

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.structures import Boxes, BoxMode, PolygonMasks
from masktron.utils.file_io import atomic_open

logger = logging.getLogger(__name__)

__all__ = ["convert_to_coco_dict", "convert_to_coco_json"]


def _rle_area_and_json(segm: Any, height: int, width: int) -> tuple[float, dict]:
    if isinstance(segm, np.ndarray):
        segm = mask_util.encode(np.asfortranarray(segm.astype(np.uint8)))
    if isinstance(segm.get("counts"), list):
        segm = mask_util.frPyObjects(segm, *segm["size"])
    area = float(mask_util.area(segm))
    counts = segm["counts"]
    counts = counts.decode("ascii") if isinstance(counts, bytes) else counts
    return area, {"size": [int(s) for s in segm["size"]], "counts": counts}


def _coco_keypoints(anno: dict, where: str) -> tuple[list[float], int]:
    """A dataset dict's `keypoints` (continuous coordinates) as COCO's, with `num_keypoints`.

    COCO files give keypoints as integer pixel indices and the loader adds 0.5 (pixel centres);
    this takes it off again, as Detectron2's conversion does. `num_keypoints` is the
    annotation's own, else the count of labelled keypoints (visibility > 0).
    """
    values = np.asarray(anno["keypoints"], dtype=np.float64).ravel()
    if values.size % 3:
        raise ValueError(
            f"{where}: 'keypoints' must be x, y, visibility triplets, got {values.size} numbers"
        )
    points = values.reshape(-1, 3)  # (3K,) -> (K, 3) x, y, visibility
    keypoints: list[float] = []
    for x, y, v in points.tolist():
        keypoints += [x - 0.5, y - 0.5, int(v) if v.is_integer() else v]
    num_keypoints = anno.get("num_keypoints")
    if num_keypoints is None:
        num_keypoints = int((points[:, 2] > 0).sum())
    return keypoints, int(num_keypoints)


def convert_to_coco_dict(dataset_name: str) -> dict:
    """A registered dataset (with `thing_classes` metadata) as a COCO instances dict.

    Category ids go back through `thing_dataset_id_to_contiguous_id` when the metadata has it;
    annotation ids start at 1; `area` is the mask area (polygon shoelace area, or RLE pixel
    count), or the box area without a segmentation.
    """
    dataset_dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    if metadata.get("thing_classes") is None:
        raise ValueError(f"dataset {dataset_name!r} has no 'thing_classes' metadata")
    reverse = {v: k for k, v in (metadata.get("thing_dataset_id_to_contiguous_id") or {}).items()}

    def original_id(contiguous_id: int) -> int:
        return int(reverse.get(contiguous_id, contiguous_id))

    categories = [
        {"id": original_id(i), "name": name} for i, name in enumerate(metadata.thing_classes)
    ]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index, record in enumerate(dataset_dicts):
        image = {
            "id": record.get("image_id", index),
            "width": int(record["width"]),
            "height": int(record["height"]),
            "file_name": str(record["file_name"]),
        }
        images.append(image)
        for anno in record.get("annotations", []):
            bbox = np.asarray(anno["bbox"], dtype=np.float64).tolist()
            if len(bbox) != 4:
                raise ValueError(
                    f"{dataset_name}: image {image['id']}: a bbox needs 4 numbers, got {bbox}"
                )
            bbox = BoxMode.convert(bbox, anno["bbox_mode"], BoxMode.XYWH_ABS)
            coco_anno: dict[str, Any] = {}
            segm = anno.get("segmentation")
            if isinstance(segm, list):
                area = float(PolygonMasks([segm]).area()[0])
                coco_anno["segmentation"] = [np.asarray(p, dtype=float).tolist() for p in segm]
            elif segm is not None:
                area, coco_anno["segmentation"] = _rle_area_and_json(
                    segm, image["height"], image["width"]
                )
            else:
                xyxy = BoxMode.convert(bbox, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
                area = float(Boxes([xyxy]).area()[0])
            coco_anno.update(
                id=len(annotations) + 1,
                image_id=image["id"],
                bbox=[round(float(x), 3) for x in bbox],
                area=area,
                iscrowd=int(anno.get("iscrowd", 0)),
                category_id=original_id(int(anno["category_id"])),
            )
            if anno.get("keypoints") is not None:
                where = f"{dataset_name}: image {image['id']}"
                coco_anno["keypoints"], coco_anno["num_keypoints"] = _coco_keypoints(anno, where)
            annotations.append(coco_anno)
    logger.info(
        "Converted %s to COCO format: %d images, %d annotations",
        dataset_name,
        len(images),
        len(annotations),
    )
    info = {
        "date_created": str(datetime.datetime.now()),
        "description": "COCO json file generated by masktron.",
    }
    return {
        "info": info,
        "images": images,
        "categories": categories,
        "licenses": None,
        "annotations": annotations,
    }


def convert_to_coco_json(dataset_name: str, output_file: str, allow_cached: bool = True) -> None:
    """Write `convert_to_coco_dict(dataset_name)` to `output_file` (atomically).

    With `allow_cached`, an existing file is kept (delete it if the dataset changed).
    """
    if allow_cached and os.path.exists(output_file):
        logger.warning("Using the cached COCO annotations %s", output_file)
        return
    coco_dict = convert_to_coco_dict(dataset_name)
    with atomic_open(output_file, "w") as f:
        json.dump(coco_dict, f)

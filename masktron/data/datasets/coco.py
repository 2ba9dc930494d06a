"""COCO instances JSON -> Detectron2 dataset dicts, and `register_coco_instances`.

What `load_coco_json` produces, as Detectron2 v0.6 does: one dict per image sorted by image id
(`file_name` = image_root/file_name, `height`, `width`, `image_id`, `annotations`), images
without annotations included (training drops them later, see `get_detection_dataset_dicts`);
each annotation with `bbox` (XYWH), `bbox_mode` = `BoxMode.XYWH_ABS`, `category_id` (mapped to
0..K-1 in sorted-id order when a dataset name is given, with `thing_classes` and
`thing_dataset_id_to_contiguous_id` stored in its metadata), `iscrowd`, and `segmentation`:
polygons (those with fewer than 3 points or an odd count dropped; an instance left with none is
dropped with a warning) or a COCO RLE dict (uncompressed `counts` lists compressed with
pycocotools). Malformed files raise `DatasetFormatError` naming the file, the record and the
field. Image files are not opened here; a missing one fails when it is read, naming it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pycocotools.mask as mask_util

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.coco_convert import convert_to_coco_dict, convert_to_coco_json
from masktron.data.datasets.format_utils import (
    DatasetFormatError,
    as_number_list,
    read_json,
    require,
)
from masktron.evaluation.rle import check_compressed_rles
from masktron.structures import BoxMode

logger = logging.getLogger(__name__)

__all__ = [
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_sem_seg",
    "register_coco_instances",
]

_ANNOTATION_KEYS = ("iscrowd", "category_id")


def load_coco_json(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    extra_annotation_keys: list[str] | None = None,
) -> list[dict]:
    """Read a COCO instances JSON file into dataset dicts (see the module docstring).

    Args:
        json_file: path to the COCO JSON file.
        image_root: directory the images' `file_name`s are relative to.
        dataset_name: if given, categories are mapped to contiguous ids and the metadata of
            this name gets `thing_classes` and `thing_dataset_id_to_contiguous_id`.
        extra_annotation_keys: further per-annotation fields to copy as they are.
    """
    json_file = os.fspath(json_file)
    data = read_json(json_file, "COCO annotation file")
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{json_file}: expected a JSON object at the top level")
    images = require(data, "images", json_file, list)
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetFormatError(f"{json_file}: field 'annotations' should be a list")
    if not os.path.isdir(image_root):
        logger.warning("%s: image directory %s does not exist", json_file, image_root)

    id_map = None
    if dataset_name is not None:
        id_map = _register_categories(data, json_file, dataset_name)

    image_records = _read_images(images, json_file, image_root)
    num_dropped = 0
    num_unmatched = 0
    seen_ann_ids: set[Any] = set()
    keys = (*_ANNOTATION_KEYS, *(extra_annotation_keys or []))
    for i, anno in enumerate(annotations):
        where = f"{json_file}: annotations[{i}]"
        if isinstance(anno, dict) and "id" in anno:
            where += f" (id {anno['id']})"
            if anno["id"] in seen_ann_ids and "minival" not in json_file:
                raise DatasetFormatError(f"{where}: annotation id {anno['id']} is not unique")
            seen_ann_ids.add(anno["id"])
        image_id = require(anno, "image_id", where)
        record = image_records.get(image_id)
        if record is None:
            num_unmatched += 1
            continue
        where += f" of image {image_id}"
        obj = _read_annotation(anno, where, keys, record, id_map)
        if obj is None:
            num_dropped += 1
        else:
            record["annotations"].append(obj)

    if num_unmatched:
        logger.warning(
            "%s contains %d annotations, but %d of them refer to no image in the file",
            json_file,
            len(annotations),
            num_unmatched,
        )
    if num_dropped:
        logger.warning(
            "%s: dropped %d instances without a valid segmentation (polygons need 3+ points)",
            json_file,
            num_dropped,
        )
    logger.info("Loaded %d images in COCO format from %s", len(image_records), json_file)
    order = sorted(image_records, key=lambda k: (isinstance(k, str), k))
    return [image_records[k] for k in order]


def _register_categories(data: dict, json_file: str, dataset_name: str) -> dict[int, int]:
    categories = require(data, "categories", json_file, list)
    if not categories:
        raise DatasetFormatError(f"{json_file}: 'categories' is empty")
    names: dict[int, str] = {}
    for i, cat in enumerate(categories):
        where = f"{json_file}: categories[{i}]"
        cat_id = require(cat, "id", where, int)
        if cat_id in names:
            raise DatasetFormatError(f"{where}: category id {cat_id} appears twice")
        names[cat_id] = require(cat, "name", f"{where} (id {cat_id})", str)
    cat_ids = sorted(names)
    if not (cat_ids[0] == 1 and cat_ids[-1] == len(cat_ids)) and "coco" not in dataset_name:
        logger.warning(
            "%s: category ids are not 1..%d; mapping them to contiguous ids",
            json_file,
            len(cat_ids),
        )
    id_map = {cat_id: i for i, cat_id in enumerate(cat_ids)}
    meta = MetadataCatalog.get(dataset_name)
    meta.thing_classes = [names[c] for c in cat_ids]
    meta.thing_dataset_id_to_contiguous_id = id_map
    return id_map


def _read_images(images: list, json_file: str, image_root: Any) -> dict[Any, dict]:
    records: dict[Any, dict] = {}
    for i, img in enumerate(images):
        where = f"{json_file}: images[{i}]"
        image_id = require(img, "id", where, (int, str))
        where += f" (id {image_id})"
        if image_id in records:
            raise DatasetFormatError(f"{where}: image id {image_id} appears twice")
        file_name = require(img, "file_name", where, str)
        height = require(img, "height", where, int)
        width = require(img, "width", where, int)
        if height <= 0 or width <= 0:
            raise DatasetFormatError(f"{where}: height and width must be positive")
        records[image_id] = {
            "file_name": os.path.join(image_root, file_name),
            "height": height,
            "width": width,
            "image_id": image_id,
            "annotations": [],
        }
    return records


def _read_annotation(
    anno: dict, where: str, keys: tuple[str, ...], record: dict, id_map: dict[int, int] | None
) -> dict | None:
    """One annotation in Detectron2's format, or None when its segmentation is unusable."""
    if anno.get("ignore", 0) != 0:
        raise DatasetFormatError(f"{where}: '\"ignore\": 1' annotations are not supported")
    obj = {key: anno[key] for key in keys if key in anno}
    obj["bbox"] = as_number_list(require(anno, "bbox", where), where, "bbox", 4)
    obj["bbox_mode"] = BoxMode.XYWH_ABS
    category_id = require(anno, "category_id", where, int)
    if id_map is not None:
        if category_id not in id_map:
            raise DatasetFormatError(
                f"{where}: field 'category_id' is {category_id}, which is not among the "
                "file's 'categories'"
            )
        obj["category_id"] = id_map[category_id]

    segm = anno.get("segmentation")
    if segm:
        if isinstance(segm, dict):
            segm = _read_rle(segm, where, record)
        elif isinstance(segm, list):
            polygons = []
            for k, poly in enumerate(segm):
                poly = as_number_list(poly, where, f"segmentation[{k}]")
                if len(poly) % 2 == 0 and len(poly) >= 6:
                    polygons.append(poly)
            if not polygons:
                return None
            segm = polygons
        else:
            raise DatasetFormatError(
                f"{where}: field 'segmentation' should be polygons (a list of lists) or an "
                f"RLE object, got {type(segm).__name__}"
            )
        obj["segmentation"] = segm

    keypoints = anno.get("keypoints")
    if keypoints:
        # COCO keypoints are integer pixel indices; +0.5 makes them continuous coordinates.
        values = as_number_list(keypoints, where, "keypoints")
        obj["keypoints"] = [v + 0.5 if k % 3 != 2 else v for k, v in enumerate(values)]
    return obj


def _read_rle(segm: dict, where: str, record: dict) -> dict:
    size = as_number_list(require(segm, "size", where), where, "segmentation.size", 2)
    counts = require(segm, "counts", where, (list, str, bytes))
    h, w = int(size[0]), int(size[1])
    if (h, w) != (record["height"], record["width"]):
        raise DatasetFormatError(
            f"{where}: RLE size [{h}, {w}] differs from the image's "
            f"[{record['height']}, {record['width']}]"
        )
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != h * w:
            raise DatasetFormatError(
                f"{where}: uncompressed RLE 'counts' sum to {sum(counts)}, expected {h * w}"
            )
        rle = mask_util.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    if isinstance(counts, str) and not counts.isascii():
        raise DatasetFormatError(f"{where}: RLE 'counts' has non-ASCII characters")
    # Evaluation refuses such RLEs (masktron.evaluation.rle); training must not accept them.
    if check_compressed_rles([{"size": [h, w], "counts": counts}], [(h, w)])[0]:
        raise DatasetFormatError(
            f"{where}: RLE 'counts' is corrupt or cut short (runs must fit {h}x{w} pixels)"
        )
    return {"size": [h, w], "counts": counts}


def register_coco_instances(
    name: str, metadata: dict, json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register a COCO-format dataset: `DatasetCatalog.get(name)` will load it on demand.

    Args:
        name: the dataset's name, e.g. "dsb2018_train".
        metadata: extra metadata (may be empty); `json_file`, `image_root` and
            `evaluator_type="coco"` are added.
        json_file: COCO instances JSON.
        image_root: directory of the images.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {name!r}")
    for arg, value in (("json_file", json_file), ("image_root", image_root)):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"register_coco_instances: {arg} must be a path, got {value!r}")
    if not isinstance(metadata, dict):
        raise TypeError(f"register_coco_instances: metadata must be a dict, got {metadata!r}")
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def load_sem_seg(
    gt_root: str | os.PathLike,
    image_root: str | os.PathLike,
    gt_ext: str = "png",
    image_ext: str = "jpg",
) -> list[dict]:
    """Pair label images in `gt_root` with images in `image_root` by file stem.

    Returns:
        dicts with `file_name` and `sem_seg_file_name`, sorted; stems present in only one of
        the folders are left out (with a warning).
    """
    gt_root, image_root = os.fspath(gt_root), os.fspath(image_root)
    for folder in (gt_root, image_root):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"directory not found: {folder}")

    def stems(folder: str, ext: str) -> dict[str, str]:
        return {
            os.path.splitext(f)[0]: os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.endswith(ext)
        }

    images, gts = stems(image_root, image_ext), stems(gt_root, gt_ext)
    if not gts:
        raise FileNotFoundError(f"no *.{gt_ext} label files in {gt_root}")
    common = sorted(set(images) & set(gts))
    if len(common) != len(gts) or len(common) != len(images):
        logger.warning(
            "%s has %d images and %s %d label files; using the %d they share",
            image_root,
            len(images),
            gt_root,
            len(gts),
            len(common),
        )
    return [{"file_name": images[s], "sem_seg_file_name": gts[s]} for s in common]

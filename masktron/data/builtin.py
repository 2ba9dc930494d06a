"""Datasets registered when `masktron.data` is imported, at Detectron2's expected paths.

The root is `$MASKTRON_DATASETS`, else `$DETECTRON2_DATASETS`, else `./datasets`, laid out as
Detectron2 documents (`datasets/README.md` of Detectron2)::

    coco/{train,val}2017/                        images
    coco/annotations/instances_{train,val}2017.json
    coco/annotations/person_keypoints_{train,val}2017.json   (keypoints_coco_2017_*)
    coco/annotations/panoptic_{train,val}2017.json, coco/panoptic_{train,val}2017/
    coco/panoptic_stuff_{train,val}2017/         from separate_coco_semantic_from_panoptic

plus two small sets in the layout of masktron's shared data folder::

    dsb2018/annotations/{train,val}.json, dsb2018/images/     (nuclei; COCO JSON with RLE)
    balloon/{train,val}/via_region_data.json + the photos     (Detectron2's tutorial, VIA)

Metadata (class names, colours, id maps) is available without any file. Loading a dataset whose
files are absent raises `FileNotFoundError` saying which file and how to point the root at it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from masktron.data.builtin_meta import get_builtin_metadata
from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.coco import register_coco_instances
from masktron.data.datasets.coco_panoptic import (
    register_coco_panoptic,
    register_coco_panoptic_separated,
)
from masktron.data.datasets.lvis import register_lvis_instances
from masktron.data.datasets.via import register_via_instances

__all__ = ["dataset_root", "register_all_builtin"]

_COCO_INSTANCES = {
    "coco_2014_train": ("coco/train2014", "coco/annotations/instances_train2014.json"),
    "coco_2014_val": ("coco/val2014", "coco/annotations/instances_val2014.json"),
    "coco_2014_minival": ("coco/val2014", "coco/annotations/instances_minival2014.json"),
    "coco_2014_valminusminival": (
        "coco/val2014",
        "coco/annotations/instances_valminusminival2014.json",
    ),
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
}

_COCO_PERSON_KEYPOINTS = {
    "keypoints_coco_2014_train": (
        "coco/train2014",
        "coco/annotations/person_keypoints_train2014.json",
    ),
    "keypoints_coco_2014_val": ("coco/val2014", "coco/annotations/person_keypoints_val2014.json"),
    "keypoints_coco_2014_minival": (
        "coco/val2014",
        "coco/annotations/person_keypoints_minival2014.json",
    ),
    "keypoints_coco_2014_valminusminival": (
        "coco/val2014",
        "coco/annotations/person_keypoints_valminusminival2014.json",
    ),
    "keypoints_coco_2017_train": (
        "coco/train2017",
        "coco/annotations/person_keypoints_train2017.json",
    ),
    "keypoints_coco_2017_val": ("coco/val2017", "coco/annotations/person_keypoints_val2017.json"),
    "keypoints_coco_2017_val_100": (
        "coco/val2017",
        "coco/annotations/person_keypoints_val2017_100.json",
    ),
}

# name -> (panoptic PNG folder, panoptic JSON, stuff label folder for Panoptic FPN)
_COCO_PANOPTIC = {
    "coco_2017_train_panoptic": (
        "coco/panoptic_train2017",
        "coco/annotations/panoptic_train2017.json",
        "coco/panoptic_stuff_train2017",
    ),
    "coco_2017_val_panoptic": (
        "coco/panoptic_val2017",
        "coco/annotations/panoptic_val2017.json",
        "coco/panoptic_stuff_val2017",
    ),
    "coco_2017_val_100_panoptic": (
        "coco/panoptic_val2017_100",
        "coco/annotations/panoptic_val2017_100.json",
        "coco/panoptic_stuff_val2017_100",
    ),
}

# LVIS v1 (Detectron2's names and paths; the images are COCO 2017's)
_LVIS = {
    "lvis_v1_train": ("coco/", "lvis/lvis_v1_train.json"),
    "lvis_v1_val": ("coco/", "lvis/lvis_v1_val.json"),
    "lvis_v1_test_dev": ("coco/", "lvis/lvis_v1_image_info_test_dev.json"),
    "lvis_v1_test_challenge": ("coco/", "lvis/lvis_v1_image_info_test_challenge.json"),
}

_DSB2018 = {
    "dsb2018_train": ("dsb2018/images", "dsb2018/annotations/train.json"),
    "dsb2018_val": ("dsb2018/images", "dsb2018/annotations/val.json"),
}

_BALLOON = {
    "balloon_train": ("balloon/train", "balloon/train/via_region_data.json"),
    "balloon_val": ("balloon/val", "balloon/val/via_region_data.json"),
}


def dataset_root() -> str:
    """`$MASKTRON_DATASETS`, else `$DETECTRON2_DATASETS`, else "datasets"."""
    return (
        os.environ.get("MASKTRON_DATASETS") or os.environ.get("DETECTRON2_DATASETS") or "datasets"
    )


def _requiring(paths: list[str], name: str, load: Callable[[], list[dict]]) -> Callable:
    """Wrap a dataset function so missing files give an actionable error first."""

    def checked() -> list[dict]:
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"dataset {name!r} needs {path}, which does not exist. Put the dataset "
                    "under $MASKTRON_DATASETS (or $DETECTRON2_DATASETS; default ./datasets) "
                    "in Detectron2's layout, or register your own copy with "
                    "register_coco_instances."
                )
        return load()

    return checked


def _wrap_last(name: str, paths: list[str]) -> None:
    DatasetCatalog[name] = _requiring(paths, name, DatasetCatalog[name])


def register_all_builtin(root: str) -> None:
    """Register every built-in dataset name under `root` (done once at import)."""
    for name, (image_root, json_file) in _COCO_INSTANCES.items():
        image_root, json_file = os.path.join(root, image_root), os.path.join(root, json_file)
        register_coco_instances(name, get_builtin_metadata("coco"), json_file, image_root)
        _wrap_last(name, [json_file])

    for name, (image_root, json_file) in _COCO_PERSON_KEYPOINTS.items():
        image_root, json_file = os.path.join(root, image_root), os.path.join(root, json_file)
        register_coco_instances(name, get_builtin_metadata("coco_person"), json_file, image_root)
        _wrap_last(name, [json_file])

    for name, (panoptic_root, panoptic_json, semantic_root) in _COCO_PANOPTIC.items():
        instances = MetadataCatalog.get(name[: -len("_panoptic")])
        image_root, instances_json = instances.image_root, instances.json_file
        panoptic_root = os.path.join(root, panoptic_root)
        panoptic_json = os.path.join(root, panoptic_json)
        semantic_root = os.path.join(root, semantic_root)
        register_coco_panoptic_separated(
            name,
            get_builtin_metadata("coco_panoptic_separated"),
            image_root,
            panoptic_root,
            panoptic_json,
            semantic_root,
            instances_json,
        )
        _wrap_last(name + "_separated", [instances_json, semantic_root])
        _wrap_last(name + "_stuffonly", [semantic_root])
        register_coco_panoptic(
            name,
            get_builtin_metadata("coco_panoptic_standard"),
            image_root,
            panoptic_root,
            panoptic_json,
            instances_json,
        )
        _wrap_last(name, [panoptic_json, panoptic_root])

    for name, (image_root, json_file) in _LVIS.items():
        image_root, json_file = os.path.join(root, image_root), os.path.join(root, json_file)
        register_lvis_instances(name, {}, json_file, image_root)
        _wrap_last(name, [json_file])

    for name, (image_root, json_file) in _DSB2018.items():
        image_root, json_file = os.path.join(root, image_root), os.path.join(root, json_file)
        # the id map is known before the JSON is read, so results carry DSB2018's id (1) even
        # when the dataset itself was never loaded (predict with the bundled config)
        metadata = {"thing_classes": ["nucleus"], "thing_dataset_id_to_contiguous_id": {1: 0}}
        register_coco_instances(name, metadata, json_file, image_root)
        _wrap_last(name, [json_file])

    for name, (image_root, json_file) in _BALLOON.items():
        image_root, json_file = os.path.join(root, image_root), os.path.join(root, json_file)
        register_via_instances(name, {"thing_classes": ["balloon"]}, json_file, image_root)
        _wrap_last(name, [json_file])


register_all_builtin(dataset_root())

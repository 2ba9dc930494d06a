"""Dataset readers and registration helpers (COCO, COCO panoptic, VIA, per-instance PNG folders)."""

from masktron.data.datasets.coco import (
    convert_to_coco_dict,
    convert_to_coco_json,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from masktron.data.datasets.coco_panoptic import (
    load_coco_panoptic_json,
    merge_to_panoptic,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    separate_coco_semantic_from_panoptic,
)
from masktron.data.datasets.format_utils import DatasetFormatError
from masktron.data.datasets.png_masks import load_png_mask_folder, register_png_mask_instances
from masktron.data.datasets.via import load_via_json, register_via_instances

__all__ = [
    "DatasetFormatError",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_png_mask_folder",
    "load_sem_seg",
    "load_via_json",
    "merge_to_panoptic",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_png_mask_instances",
    "register_via_instances",
    "separate_coco_semantic_from_panoptic",
]

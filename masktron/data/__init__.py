"""Datasets, catalogs, transforms, the dataset mapper, samplers and data loaders.

Importing this package registers the built-in dataset names (`coco_2017_train`, ...; see
`masktron.data.builtin`), as `import detectron2.data` does.
"""

from masktron.data import builtin as _builtin  # noqa: F401  (registers the built-in datasets)
from masktron.data import datasets, detection_utils, samplers, transforms
from masktron.data.build import (
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
    load_proposals_into_dataset,
    print_instances_class_histogram,
    trivial_batch_collator,
)
from masktron.data.catalog import DatasetCatalog, Metadata, MetadataCatalog
from masktron.data.common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    ToIterableDataset,
)
from masktron.data.dataset_mapper import DatasetMapper
from masktron.data.datasets import (
    convert_to_coco_json,
    load_coco_json,
    load_via_json,
    register_coco_instances,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    register_png_mask_instances,
    register_via_instances,
)
from masktron.data.detection_utils import read_image

__all__ = [
    "AspectRatioGroupedDataset",
    "DatasetCatalog",
    "DatasetFromList",
    "DatasetMapper",
    "MapDataset",
    "Metadata",
    "ToIterableDataset",
    "MetadataCatalog",
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "convert_to_coco_json",
    "datasets",
    "detection_utils",
    "get_detection_dataset_dicts",
    "load_coco_json",
    "load_proposals_into_dataset",
    "load_via_json",
    "print_instances_class_histogram",
    "read_image",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_png_mask_instances",
    "register_via_instances",
    "samplers",
    "transforms",
    "trivial_batch_collator",
]

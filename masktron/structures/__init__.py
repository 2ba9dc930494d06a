"""Data structures shared by models, data and evaluation: boxes, masks, instances, image batches."""

from masktron.structures.boxes import (
    Boxes,
    BoxMode,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
)
from masktron.structures.image_list import ImageList
from masktron.structures.instances import Instances
from masktron.structures.keypoints import Keypoints, heatmaps_to_keypoints
from masktron.structures.masks import (
    BitMasks,
    PolygonMasks,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)

__all__ = [
    "BitMasks",
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "Keypoints",
    "PolygonMasks",
    "heatmaps_to_keypoints",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
]

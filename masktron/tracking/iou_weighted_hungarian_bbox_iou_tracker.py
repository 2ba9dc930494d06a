"""Detectron2's import path (`detectron2.tracking.iou_weighted_hungarian_bbox_iou_tracker`)."""

from masktron.tracking.hungarian_tracker import IOUWeightedHungarianBBoxIOUTracker

__all__ = ["IOUWeightedHungarianBBoxIOUTracker"]

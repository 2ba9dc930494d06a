"""Detectron2's import path (`detectron2.tracking.vanilla_hungarian_bbox_iou_tracker`)."""

from masktron.tracking.hungarian_tracker import VanillaHungarianBBoxIOUTracker

__all__ = ["VanillaHungarianBBoxIOUTracker"]

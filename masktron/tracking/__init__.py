"""Tracking: ids that follow objects across video frames, as a step after the predictor.

Detectron2's `detectron2.tracking` names and behaviour (`BaseTracker`, `BBoxIOUTracker`,
`VanillaHungarianBBoxIOUTracker`, `IOUWeightedHungarianBBoxIOUTracker`, `build_tracker_head`,
`TRACKER_HEADS.*` config keys), plus `ByteTracker` (ByteTrack with a Kalman motion model), the
default of `masktron predict --track`. Every tracker can match on box or mask IoU.

    predictor = DefaultPredictor(cfg)
    tracker = instantiate_tracker("bytetrack")
    for frame in frames:
        instances = tracker.update(predictor(frame)["instances"].to("cpu"))
        instances.ID  # one id per instance
"""

from masktron.tracking.base_tracker import BaseTracker, PreviousFrameTracker
from masktron.tracking.bbox_iou_tracker import BBoxIOUTracker
from masktron.tracking.build import TRACKERS, build_tracker_head, instantiate_tracker
from masktron.tracking.byte_tracker import ByteTracker
from masktron.tracking.hungarian_tracker import (
    BaseHungarianTracker,
    IOUWeightedHungarianBBoxIOUTracker,
    VanillaHungarianBBoxIOUTracker,
)
from masktron.tracking.kalman import KalmanFilterXYAH
from masktron.tracking.utils import (
    LARGE_COST_VALUE,
    create_prediction_pairs,
    instance_iou,
    pairwise_mask_iou,
)

__all__ = [
    "LARGE_COST_VALUE",
    "TRACKERS",
    "BBoxIOUTracker",
    "BaseHungarianTracker",
    "BaseTracker",
    "ByteTracker",
    "IOUWeightedHungarianBBoxIOUTracker",
    "KalmanFilterXYAH",
    "PreviousFrameTracker",
    "VanillaHungarianBBoxIOUTracker",
    "build_tracker_head",
    "create_prediction_pairs",
    "instance_iou",
    "instantiate_tracker",
    "pairwise_mask_iou",
]

"""`BaseTracker` (Detectron2's tracker interface) and the frame-to-frame logic its trackers share.

A tracker is a step after the predictor: `instances = tracker.update(predictor(frame)
["instances"])` gives the frame's instances back with three list fields of length N,
  `ID`: the track id (an int, stable while the tracker follows the object),
  `ID_period`: how many frames the id has been matched so far (1 on the frame it is born),
  `lost_frame_count`: 0 for a detection of this frame; k for an instance carried over from an
  earlier frame (see `max_lost_frame_count`) after k frames without a match.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from masktron.structures import Boxes, Instances
from masktron.tracking.utils import MATCH_METRICS

__all__ = ["BaseTracker", "build_tracker_head"]


class BaseTracker:
    """The interface of every tracker: `update(instances) -> instances` with `ID` fields added."""

    def __init__(self, **kwargs: Any):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unknown arguments {sorted(kwargs)}")
        self._prev_instances: Instances | None = None
        self._matched_idx: set[int] = set()
        self._matched_ID: set[int] = set()  # noqa: N815 (Detectron2's attribute name)
        self._untracked_prev_idx: set[int] = set()
        self._id_count = 0

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """Constructor arguments from `cfg.TRACKER_HEADS`, with `_target_` naming the class."""
        raise NotImplementedError(f"{cls.__name__}.from_config")

    def update(self, instances: Instances) -> Instances:
        """Assign ids to one frame's predictions (frames must come in order).

        Args:
            instances: the frame's predictions: `pred_boxes` (XYXY pixels), `scores`,
                `pred_classes`, optionally `pred_masks` (N, H, W).

        Returns:
            Instances with `ID`, `ID_period` and `lost_frame_count` (lists of N ints).
        """
        raise NotImplementedError(f"{type(self).__name__}.update")


class PreviousFrameTracker(BaseTracker):
    """What Detectron2's IoU trackers share: match against the previous frame's output, give new
    ids in turn from 0, and carry unmatched instances over for up to `max_lost_frame_count` frames.

    Args:
        video_height: frame height in pixels; 0 takes it from the first frame.
        video_width: frame width in pixels; 0 takes it from the first frame.
        max_num_instances: kept for Detectron2 compatibility (Detectron2 does not use it either).
        max_lost_frame_count: how many frames an unmatched instance is carried over (its last box,
            mask, class and score, `lost_frame_count` counting up) so that it can be matched
            again; 0 forgets it at once.
        min_box_rel_dim: instances whose box is narrower or shorter than this fraction of the
            frame are not carried over.
        min_instance_period: only instances matched in more than this many frames are carried.
        track_iou_threshold: the least IoU for a pair to be matched.
        match_metric: "box" (Detectron2) or "mask" (mask IoU; needs `pred_masks`).
    """

    def __init__(
        self,
        *,
        video_height: int = 0,
        video_width: int = 0,
        max_num_instances: int = 200,
        max_lost_frame_count: int = 0,
        min_box_rel_dim: float = 0.02,
        min_instance_period: int = 1,
        track_iou_threshold: float = 0.5,
        match_metric: str = "box",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if match_metric not in MATCH_METRICS:
            raise ValueError(f"match_metric must be one of {MATCH_METRICS}, got {match_metric!r}")
        self._video_height = int(video_height)
        self._video_width = int(video_width)
        self._max_num_instances = max_num_instances
        self._max_lost_frame_count = max_lost_frame_count
        self._min_box_rel_dim = min_box_rel_dim
        self._min_instance_period = min_instance_period
        self._track_iou_threshold = track_iou_threshold
        self._match_metric = match_metric

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """The arguments every IoU tracker reads from `cfg.TRACKER_HEADS` (Detectron2's keys)."""
        heads = cfg.TRACKER_HEADS
        return {
            "_target_": f"{cls.__module__}.{cls.__name__}",
            "video_height": heads.get("VIDEO_HEIGHT", 0),
            "video_width": heads.get("VIDEO_WIDTH", 0),
            "max_num_instances": heads.get("MAX_NUM_INSTANCES", 200),
            "max_lost_frame_count": heads.get("MAX_LOST_FRAME_COUNT", 0),
            "min_box_rel_dim": heads.get("MIN_BOX_REL_DIM", 0.02),
            "min_instance_period": heads.get("MIN_INSTANCE_PERIOD", 1),
            "track_iou_threshold": heads.get("TRACK_IOU_THRESHOLD", 0.5),
            "match_metric": heads.get("MATCH_METRIC", "box"),
        }

    def _initialize_extra_fields(self, instances: Instances) -> Instances:
        """Add `ID`, `ID_period`, `lost_frame_count`; on the first frame, ids 0..N-1."""
        n = len(instances)
        for name in ("ID", "ID_period", "lost_frame_count"):
            if not instances.has(name):
                instances.set(name, [None] * n)
        if self._video_height <= 0 or self._video_width <= 0:
            self._video_height, self._video_width = instances.image_size
        if self._prev_instances is None:
            instances.ID = list(range(n))
            self._id_count += n
            instances.ID_period = [1] * n
            instances.lost_frame_count = [0] * n
        return instances

    def _take_prev_id(self, instances: Instances, idx: int, prev_idx: int) -> None:
        """Current instance `idx` continues the previous frame's instance `prev_idx`."""
        prev = self._prev_instances
        assert prev is not None
        instances.ID[idx] = prev.ID[prev_idx]
        instances.ID_period[idx] = prev.ID_period[prev_idx] + 1
        instances.lost_frame_count[idx] = 0

    def _new_ids(self, instances: Instances, matched_idx: set[int]) -> Instances:
        """Fresh ids, in index order, for the instances that matched nothing."""
        for idx in sorted(set(range(len(instances))) - matched_idx):
            instances.ID[idx] = self._id_count
            self._id_count += 1
            instances.ID_period[idx] = 1
            instances.lost_frame_count[idx] = 0
        return instances

    def _keeps(self, prev_idx: int) -> bool:
        """Whether an unmatched previous instance is carried over (Detectron2's four rules)."""
        prev = self._prev_instances
        assert prev is not None
        x0, y0, x1, y1 = np.asarray(_box_tensor(prev.pred_boxes)[prev_idx], dtype=np.float64)
        return not (
            (x1 - x0) / self._video_width < self._min_box_rel_dim
            or (y1 - y0) / self._video_height < self._min_box_rel_dim
            or prev.lost_frame_count[prev_idx] >= self._max_lost_frame_count
            or prev.ID_period[prev_idx] <= self._min_instance_period
        )

    def _carry_untracked(self, instances: Instances, untracked_prev_idx: set[int]) -> Instances:
        """Append the unmatched previous instances that are kept, `lost_frame_count` + 1."""
        prev = self._prev_instances
        assert prev is not None
        keep = [j for j in sorted(untracked_prev_idx) if self._keeps(j)]
        if not keep:
            return instances
        carried = prev[torch.as_tensor(keep, dtype=torch.int64)]
        carried.lost_frame_count = [c + 1 for c in carried.lost_frame_count]
        if not instances.get_fields():  # a frame whose output has no fields at all
            return carried
        missing = [k for k in instances.get_fields() if not carried.has(k)]
        if missing:
            raise ValueError(f"frame instances have fields {missing} the previous frame lacked")
        carried = _only_fields(carried, list(instances.get_fields()))
        if carried.has("pred_masks") and hasattr(instances.pred_masks, "dtype"):
            carried.pred_masks = carried.pred_masks.to(instances.pred_masks.dtype)
        return Instances.cat([instances, carried])

    def _remember(self, instances: Instances) -> Instances:
        self._prev_instances = copy.deepcopy(instances)
        return instances


def build_tracker_head(cfg: Any) -> BaseTracker:
    """Detectron2's import path of `masktron.tracking.build.build_tracker_head`."""
    from masktron.tracking.build import build_tracker_head as build

    return build(cfg)


def _box_tensor(boxes: Any) -> Any:
    return boxes.tensor if isinstance(boxes, Boxes) else boxes


def _only_fields(instances: Instances, names: list[str]) -> Instances:
    out = Instances(instances.image_size)
    for name in names:
        out.set(name, instances.get(name))
    return out

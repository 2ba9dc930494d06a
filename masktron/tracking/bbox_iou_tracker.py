"""`BBoxIOUTracker`: Detectron2's greedy IoU tracker."""

from __future__ import annotations

from masktron.structures import Instances
from masktron.tracking.base_tracker import PreviousFrameTracker
from masktron.tracking.utils import instance_iou

__all__ = ["BBoxIOUTracker"]


class BBoxIOUTracker(PreviousFrameTracker):
    """Greedy matching on IoU with the previous frame, as Detectron2 does it.

    Pairs are visited current-index-major (instance 0 of this frame against previous instances
    0, 1, ..., then instance 1, ...), not by IoU: a pair is taken when its IoU is at least
    `track_iou_threshold` and neither its current instance nor its previous id is taken yet.
    Detectron2 visits them in this order too, so both give the same ids. Instances left
    unmatched get new ids in index order.

    Constructor arguments: see `PreviousFrameTracker` (Detectron2's, plus `match_metric`).
    """

    def update(self, instances: Instances) -> Instances:
        instances = self._initialize_extra_fields(instances)
        if self._prev_instances is not None:
            iou_all = instance_iou(instances, self._prev_instances, self._match_metric)
            self._reset_fields()
            prev = self._prev_instances
            for idx in range(len(instances)):
                for prev_idx in range(len(prev)):
                    prev_id = prev.ID[prev_idx]
                    if (
                        idx in self._matched_idx
                        or prev_id in self._matched_ID
                        or iou_all[idx, prev_idx] < self._track_iou_threshold
                    ):
                        continue
                    self._take_prev_id(instances, idx, prev_idx)
                    self._matched_idx.add(idx)
                    self._matched_ID.add(prev_id)
                    self._untracked_prev_idx.discard(prev_idx)
            instances = self._assign_new_id(instances)
            instances = self._merge_untracked_instances(instances)
        return self._remember(instances)

    def _reset_fields(self) -> None:
        """Forget the previous frame's matches before matching a new frame."""
        self._matched_idx = set()
        self._matched_ID = set()
        n_prev = len(self._prev_instances) if self._prev_instances is not None else 0
        self._untracked_prev_idx = set(range(n_prev))

    def _assign_new_id(self, instances: Instances) -> Instances:
        """New ids for this frame's instances that matched nothing."""
        return self._new_ids(instances, self._matched_idx)

    def _merge_untracked_instances(self, instances: Instances) -> Instances:
        """Append the previous frame's unmatched instances that are carried over."""
        return self._carry_untracked(instances, self._untracked_prev_idx)

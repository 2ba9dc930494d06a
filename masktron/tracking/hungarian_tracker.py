"""Detectron2's Hungarian trackers: an optimal one-to-one assignment with the previous frame,
solved by `scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from masktron.structures import Instances
from masktron.tracking.base_tracker import PreviousFrameTracker
from masktron.tracking.utils import LARGE_COST_VALUE, create_prediction_pairs, instance_iou

__all__ = [
    "BaseHungarianTracker",
    "IOUWeightedHungarianBBoxIOUTracker",
    "VanillaHungarianBBoxIOUTracker",
]


class BaseHungarianTracker(PreviousFrameTracker):
    """Assign by minimising the total cost of `build_cost_matrix` (subclasses define it).

    Pairs whose cost is `LARGE_COST_VALUE` (IoU under the threshold) are never matched, as
    Detectron2 documents for `track_iou_threshold`. (Detectron2's code keeps whatever the solver
    returns, so when a frame has no pair above the threshold for some instance, it can still
    inherit an id from a far-away box; masktron drops those pairs.)
    """

    def build_cost_matrix(self, instances: Instances, prev_instances: Instances) -> np.ndarray:
        """(N, M) cost of giving current instance i the id of previous instance j."""
        raise NotImplementedError(f"{type(self).__name__}.build_cost_matrix")

    def update(self, instances: Instances) -> Instances:
        instances = self._initialize_extra_fields(instances)
        if self._prev_instances is not None:
            self._untracked_prev_idx = set(range(len(self._prev_instances)))
            cost = self.build_cost_matrix(instances, self._prev_instances)
            matched_idx, matched_prev_idx = linear_sum_assignment(cost)
            valid = cost[matched_idx, matched_prev_idx] < LARGE_COST_VALUE
            matched_idx, matched_prev_idx = matched_idx[valid], matched_prev_idx[valid]
            instances = self._process_matched_idx(instances, matched_idx, matched_prev_idx)
            instances = self._process_unmatched_idx(instances, matched_idx)
            instances = self._process_unmatched_prev_idx(instances, matched_prev_idx)
        return self._remember(instances)

    def _process_matched_idx(
        self, instances: Instances, matched_idx: np.ndarray, matched_prev_idx: np.ndarray
    ) -> Instances:
        """Matched instances take the previous instance's id, `ID_period` + 1."""
        if matched_idx.size != matched_prev_idx.size:
            raise ValueError("matched_idx and matched_prev_idx differ in length")
        for idx, prev_idx in zip(matched_idx.tolist(), matched_prev_idx.tolist()):
            self._take_prev_id(instances, idx, prev_idx)
        return instances

    def _process_unmatched_idx(self, instances: Instances, matched_idx: np.ndarray) -> Instances:
        """New ids, in index order, for the instances not matched."""
        return self._new_ids(instances, {int(i) for i in matched_idx})

    def _process_unmatched_prev_idx(
        self, instances: Instances, matched_prev_idx: np.ndarray
    ) -> Instances:
        """Carry over the previous instances not matched (see `max_lost_frame_count`)."""
        assert self._prev_instances is not None
        matched = {int(j) for j in matched_prev_idx}
        untracked = set(range(len(self._prev_instances))) - matched
        return self._carry_untracked(instances, untracked)


class VanillaHungarianBBoxIOUTracker(BaseHungarianTracker):
    """Hungarian matching where every pair at or above `track_iou_threshold` costs -1: the
    assignment maximises the number of matched pairs, whatever their IoU.

    Constructor arguments: see `PreviousFrameTracker` (Detectron2's, plus `match_metric`).
    """

    def build_cost_matrix(self, instances: Instances, prev_instances: Instances) -> np.ndarray:
        iou_all = instance_iou(instances, prev_instances, self._match_metric)
        pairs = create_prediction_pairs(
            instances, prev_instances, iou_all, threshold=self._track_iou_threshold
        )
        cost = np.full((len(instances), len(prev_instances)), float(LARGE_COST_VALUE))
        return self.assign_cost_matrix_values(cost, pairs)

    def assign_cost_matrix_values(
        self, cost_matrix: np.ndarray, bbox_pairs: list[dict[str, Any]]
    ) -> np.ndarray:
        """Write each pair's cost into `cost_matrix` (here -1: all valid pairs are equal)."""
        for pair in bbox_pairs:
            cost_matrix[pair["idx"], pair["prev_idx"]] = -1
        return cost_matrix


class IOUWeightedHungarianBBoxIOUTracker(VanillaHungarianBBoxIOUTracker):
    """Hungarian matching that maximises the summed IoU of the pairs above the threshold
    (cost -IoU), so a closer box wins where the vanilla tracker may pick either.
    """

    def assign_cost_matrix_values(
        self, cost_matrix: np.ndarray, bbox_pairs: list[dict[str, Any]]
    ) -> np.ndarray:
        for pair in bbox_pairs:
            cost_matrix[pair["idx"], pair["prev_idx"]] = -pair["IoU"]
        return cost_matrix

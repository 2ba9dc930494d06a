"""Instance masks with stable ids through a video, without clicks: a detector seeds SAM 2.

The detector runs on the first frame; each of its detections (score >= `score_thresh`) becomes
a SAM 2 object prompted with its box, and SAM 2's video predictor tracks them. Every
`detect_every` frames the detector runs again: a detection whose mask (or box) is not mostly
covered by the masks tracked on that frame is an object that appeared, and is added there with
a new id. Ids are never reused; an object SAM 2 loses (empty mask) is left out of that frame
and may come back later under its id.

    tracker = SAM2SeededTracker(sam2_predictor, DefaultPredictor(cfg), detect_every=10)
    for frame_idx, instances in tracker.track("walk.mp4"):
        instances.ID, instances.pred_masks, instances.pred_classes, instances.scores
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from masktron.predictors.sam2_video_state import forget_tracked_outputs, memory_reach
from masktron.structures import Boxes, Instances

__all__ = ["SAM2SeededTracker"]


class SAM2SeededTracker:
    """Seed SAM 2's video predictor with a detector's boxes (see the module docstring).

    Args:
        predictor: a `SAM2VideoPredictor`.
        detector: called on (H, W, 3) uint8 BGR frames, returns {"instances": Instances} with
            `pred_boxes`, `scores`, `pred_classes` (and `pred_masks`, used when present), as
            `DefaultPredictor` does.
        score_thresh: detections below it are ignored.
        detect_every: frames between two detector runs (1: every frame).
        cover_thresh: a detection is already tracked when this fraction of it lies under the
            tracked masks.
    """

    def __init__(
        self,
        predictor: Any,
        detector: Callable[[np.ndarray], dict[str, Any]],
        *,
        score_thresh: float = 0.5,
        detect_every: int = 10,
        cover_thresh: float = 0.5,
    ):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.predictor = predictor
        self.detector = detector
        self.score_thresh = float(score_thresh)
        self.detect_every = int(detect_every)
        self.cover_thresh = float(cover_thresh)

    def track(self, source: str | os.PathLike) -> Iterator[tuple[int, Instances]]:
        """Yield (frame index, Instances with `ID`) for every frame of a video or folder."""
        predictor = self.predictor
        state = predictor.init_state(source)
        self.state = state
        frames, num_frames = state["images"], state["num_frames"]
        classes: dict[int, tuple[int, float]] = {}  # id -> (class, detection score)
        reach = memory_reach(predictor.model)
        t = 0
        tracked = None  # (N, H, W) bool masks of the frame `t`, once tracked
        while t < num_frames:
            if self._seed(state, frames, t, tracked, classes) == 0 and not classes:
                tracked = None  # nothing to track yet: frames until the next detection are empty
                for k in range(t, min(t + self.detect_every, num_frames)):
                    yield k, self._instances(state, k, [], None, classes)
                t += self.detect_every
                continue
            last = min(t + self.detect_every, num_frames - 1)
            for frame_idx, obj_ids, masks in predictor.propagate_in_video(
                state, start_frame_idx=t, max_frame_num_to_track=last - t
            ):
                binary = (masks[:, 0] > 0).cpu()  # (N, 1, H, W) -> (N, H, W)
                if frame_idx == last and last < num_frames - 1:
                    tracked = binary  # seeded next; yielded by the next round
                    break
                yield frame_idx, self._instances(state, frame_idx, list(obj_ids), binary, classes)
            forget_tracked_outputs(state, [last], reach)
            t = last if last < num_frames - 1 else num_frames

    def _seed(
        self,
        state: dict,
        frames: Any,
        t: int,
        tracked: torch.Tensor | None,
        classes: dict[int, tuple[int, float]],
    ) -> int:
        """Run the detector on frame t; prompt SAM 2 with the new objects. Returns how many."""
        bgr = np.ascontiguousarray(frames.original(t)[:, :, ::-1])
        instances = self.detector(bgr)["instances"].to("cpu")
        instances = instances[instances.scores >= self.score_thresh]
        height, width = bgr.shape[:2]
        covered = torch.zeros(height, width, dtype=torch.bool)
        if tracked is not None and len(tracked):
            covered = tracked.any(0)
        added = 0
        for k in torch.argsort(instances.scores, descending=True).tolist():
            box = instances.pred_boxes.tensor[k]
            region = self._region(instances, k, box, height, width)
            area = int(region.sum())
            if area == 0 or int((region & covered).sum()) >= self.cover_thresh * area:
                continue
            obj_id = max(classes, default=0) + 1
            classes[obj_id] = (int(instances.pred_classes[k]), float(instances.scores[k]))
            self.predictor.add_new_points_or_box(state, t, obj_id, box=box.tolist())
            covered |= region
            added += 1
        return added

    @staticmethod
    def _region(instances: Instances, k: int, box: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(H, W) bool: detection k's mask, or its box where the detector gives no mask."""
        if instances.has("pred_masks"):
            mask = torch.as_tensor(getattr(instances.pred_masks, "tensor", instances.pred_masks))
            return mask[k].bool()
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        region = torch.zeros(h, w, dtype=torch.bool)
        region[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        return region

    @staticmethod
    def _instances(
        state: dict,
        frame_idx: int,
        obj_ids: list,
        masks: torch.Tensor | None,
        classes: dict[int, tuple[int, float]],
    ) -> Instances:
        """The objects present on a frame (non-empty masks) as Detectron2-style Instances."""
        size = (state["video_height"], state["video_width"])
        keep = [] if masks is None else [i for i in range(len(obj_ids)) if masks[i].any()]
        result = Instances(size)
        if keep and masks is not None:
            chosen = masks[keep]  # (K, H, W) bool
        else:
            chosen = torch.zeros(0, *size, dtype=torch.bool)
        ids = [int(obj_ids[i]) for i in keep]
        result.pred_masks = chosen
        result.pred_boxes = Boxes(_mask_boxes(chosen))
        result.scores = torch.tensor([classes[i][1] for i in ids], dtype=torch.float32)
        result.pred_classes = torch.tensor([classes[i][0] for i in ids], dtype=torch.int64)
        result.ID = ids
        return result


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(K, H, W) bool -> (K, 4) XYXY boxes enclosing each (non-empty) mask."""
    if len(masks) == 0:
        return torch.zeros(0, 4)
    rows, cols = masks.any(2), masks.any(1)  # (K, H), (K, W)
    h, w = masks.shape[1:]
    ys = torch.arange(h)
    xs = torch.arange(w)
    y0 = torch.where(rows, ys, h).min(1).values
    y1 = torch.where(rows, ys, -1).max(1).values + 1
    x0 = torch.where(cols, xs, w).min(1).values
    x1 = torch.where(cols, xs, -1).max(1).values + 1
    return torch.stack([x0, y0, x1, y1], dim=1).float()

"""`ByteTracker`: ByteTrack's association (Zhang et al., ECCV 2022, https://arxiv.org/abs/2110.06864)
on masktron's `Instances`, with a Kalman motion model and box or mask IoU.

Per frame: every track's box is predicted one frame ahead; high-score detections are matched to
all tracks (followed and lost); the low-score ones, which ByteTrack's point is not to throw away
(occluded or blurred objects), are matched to the followed tracks still unmatched; the tracks
born on the previous frame are confirmed by a high-score detection or dropped; the rest of the
high-score detections start tracks. A lost track keeps its id for `track_buffer` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from masktron.structures import Boxes, Instances, pairwise_iou
from masktron.tracking.base_tracker import BaseTracker
from masktron.tracking.kalman import KalmanFilterXYAH, xyah_to_xyxy, xyxy_to_xyah
from masktron.tracking.utils import MATCH_METRICS, pairwise_mask_iou

__all__ = ["ByteTracker"]

# ByteTrack's fixed IoU-distance limits for its second and third associations.
_LOW_SCORE_MATCH_THRESH = 0.5
_UNCONFIRMED_MATCH_THRESH = 0.7
_DUPLICATE_IOU = 0.85  # a lost track this close to a followed one is the same object


@dataclass
class _Track:
    mean: np.ndarray  # (8,) Kalman state
    cov: np.ndarray  # (8, 8)
    box: np.ndarray  # (4,) XYXY of the last matched detection
    mask: torch.Tensor | None  # (H, W) bool of the last matched detection
    score: float
    start_frame: int
    last_frame: int
    track_id: int = -1  # given when the track is confirmed
    period: int = 1  # frames matched so far
    lost: bool = False

    def predicted_box(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean)


class ByteTracker(BaseTracker):
    """ByteTrack: two-stage association of high- and low-score detections, Kalman motion.

    `update(instances)` returns the frame's detections that belong to a confirmed track, in
    their input order, with `ID` (from 1), `ID_period` and `lost_frame_count` (always 0); the
    other detections (low score and unmatched, or a track's first frame after the first frame
    of the video) are left out, as ByteTrack does.

    Args:
        track_high_thresh: detections scoring at least this go to the first association.
        track_low_thresh: detections scoring above this (and under the high threshold) go to the
            second association; lower ones are ignored.
        new_track_thresh: the least score of an unmatched detection that starts a track.
        match_thresh: the largest IoU distance (1 - IoU, times the score with `fuse_score`) of
            a pair in the first association.
        track_buffer: frames (at 30 frame/s; scaled by `frame_rate`) a lost track is kept.
        frame_rate: frames per second of the video.
        fuse_score: weight the first association's IoU by the detection score.
        match_metric: "box" IoU, or "mask" IoU between a detection's mask and the track's last
            mask moved to the predicted position.
        video_height, video_width: accepted for Detectron2's config keys; not needed.
    """

    def __init__(
        self,
        *,
        track_high_thresh: float = 0.5,
        track_low_thresh: float = 0.1,
        new_track_thresh: float = 0.6,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        fuse_score: bool = True,
        match_metric: str = "box",
        video_height: int = 0,
        video_width: int = 0,
    ):
        super().__init__()
        if match_metric not in MATCH_METRICS:
            raise ValueError(f"match_metric must be one of {MATCH_METRICS}, got {match_metric!r}")
        if not 0 <= track_low_thresh <= track_high_thresh:
            raise ValueError("ByteTracker needs 0 <= track_low_thresh <= track_high_thresh")
        self._high = track_high_thresh
        self._low = track_low_thresh
        self._new = new_track_thresh
        self._match_thresh = match_thresh
        self._max_time_lost = max(int(frame_rate / 30.0 * track_buffer), 0)
        self._fuse_score = fuse_score
        self._match_metric = match_metric
        self._kalman = KalmanFilterXYAH()
        self._tracks: list[_Track] = []  # followed (confirmed or not) and lost
        self._frame = 0
        self._id_count = 1

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        heads = cfg.TRACKER_HEADS
        return {
            "_target_": f"{cls.__module__}.{cls.__name__}",
            "track_high_thresh": heads.get("TRACK_HIGH_THRESH", 0.5),
            "track_low_thresh": heads.get("TRACK_LOW_THRESH", 0.1),
            "new_track_thresh": heads.get("NEW_TRACK_THRESH", 0.6),
            "match_thresh": heads.get("MATCH_THRESH", 0.8),
            "track_buffer": heads.get("TRACK_BUFFER", 30),
            "frame_rate": heads.get("FRAME_RATE", 30.0),
            "fuse_score": heads.get("FUSE_SCORE", True),
            "match_metric": heads.get("MATCH_METRIC", "box"),
        }

    def update(self, instances: Instances) -> Instances:
        self._frame += 1
        boxes = _boxes_array(instances)  # (N, 4)
        scores = torch.as_tensor(instances.scores).detach().cpu().numpy().astype(np.float64)
        masks = _masks(instances) if self._match_metric == "mask" else None
        for t in self._tracks:
            if t.track_id >= 0:  # a confirmed track moves; a newborn one stays where it was seen
                if t.lost:
                    t.mean[7] = 0.0  # as ByteTrack: a lost box keeps its height
                t.mean, t.cov = self._kalman.predict(t.mean, t.cov)
        high = np.flatnonzero(scores >= self._high)
        low = np.flatnonzero((scores > self._low) & (scores < self._high))
        assigned: dict[int, _Track] = {}  # detection index -> track

        pool = [t for t in self._tracks if t.track_id >= 0]
        matches, left_tracks, left_high = self._associate(
            pool, high, boxes, scores, masks, self._match_thresh, self._fuse_score
        )
        self._apply(matches, boxes, scores, masks, assigned)
        followed = [t for t in left_tracks if not t.lost]
        matches, left_followed, _ = self._associate(
            followed, low, boxes, scores, masks, _LOW_SCORE_MATCH_THRESH, False
        )
        self._apply(matches, boxes, scores, masks, assigned)
        for t in left_followed:
            t.lost = True
        newborn = [t for t in self._tracks if t.track_id < 0]
        matches, left_newborn, left_high = self._associate(
            newborn, left_high, boxes, scores, masks, _UNCONFIRMED_MATCH_THRESH, self._fuse_score
        )
        self._apply(matches, boxes, scores, masks, assigned)
        dropped = {id(t) for t in left_newborn}
        for d in left_high:
            if scores[d] >= self._new:
                track = self._start(
                    boxes[d], scores[d], masks[int(d)] if masks is not None else None
                )
                if self._frame == 1:
                    track.track_id, self._id_count = self._id_count, self._id_count + 1
                    assigned[int(d)] = track
        self._tracks = [
            t
            for t in self._tracks
            if id(t) not in dropped and (self._frame - t.last_frame) <= self._max_time_lost
        ]
        self._drop_duplicates()
        return self._output(instances, assigned)

    def _associate(
        self,
        tracks: list[_Track],
        dets: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        masks: torch.Tensor | None,
        max_distance: float,
        fuse_score: bool,
    ) -> tuple[list[tuple[_Track, int]], list[_Track], np.ndarray]:
        """Hungarian matching of tracks to detections `dets` on 1 - IoU, up to `max_distance`.

        Returns:
            matched (track, detection index) pairs, tracks left, detection indices left.
        """
        if not tracks or dets.size == 0:
            return [], list(tracks), dets
        iou = self._similarity(tracks, dets, boxes, masks)  # (T, D)
        if fuse_score:
            iou = iou * scores[dets][None, :]
        distance = 1.0 - iou
        rows, cols = linear_sum_assignment(distance)
        keep = distance[rows, cols] <= max_distance
        matches = [(tracks[r], int(dets[c])) for r, c in zip(rows[keep], cols[keep])]
        taken_t, taken_d = set(rows[keep].tolist()), set(cols[keep].tolist())
        left_tracks = [t for i, t in enumerate(tracks) if i not in taken_t]
        left_dets = np.array([d for j, d in enumerate(dets) if j not in taken_d], dtype=np.int64)
        return matches, left_tracks, left_dets

    def _similarity(
        self, tracks: list[_Track], dets: np.ndarray, boxes: np.ndarray, masks: Any
    ) -> np.ndarray:
        """(T, D) box IoU of predicted boxes, or mask IoU of the last masks moved along."""
        predicted = np.stack([t.predicted_box() if t.track_id >= 0 else t.box for t in tracks])
        if masks is None:
            iou = pairwise_iou(Boxes(torch.from_numpy(predicted)), Boxes(torch.from_numpy(boxes)))
            return iou.numpy()[:, dets]
        moved = torch.stack(
            [_shift_mask(t.mask, *_centre_shift(t.box, p)) for t, p in zip(tracks, predicted)]
        )
        return pairwise_mask_iou(moved, masks[torch.from_numpy(dets)]).numpy().astype(np.float64)

    def _apply(
        self,
        matches: list[tuple[_Track, int]],
        boxes: np.ndarray,
        scores: np.ndarray,
        masks: torch.Tensor | None,
        assigned: dict[int, _Track],
    ) -> None:
        """Correct each matched track with its detection; confirm newborn tracks."""
        for track, d in matches:
            track.mean, track.cov = self._kalman.update(
                track.mean, track.cov, xyxy_to_xyah(boxes[d])
            )
            track.box, track.score = boxes[d].copy(), float(scores[d])
            track.mask = masks[d] if masks is not None else None
            track.last_frame, track.lost = self._frame, False
            if track.track_id < 0:
                track.track_id, self._id_count = self._id_count, self._id_count + 1
            track.period += 1
            assigned[d] = track

    def _start(self, box: np.ndarray, score: float, mask: torch.Tensor | None) -> _Track:
        mean, cov = self._kalman.initiate(xyxy_to_xyah(box))
        track = _Track(mean, cov, box.copy(), mask, float(score), self._frame, self._frame)
        self._tracks.append(track)
        return track

    def _drop_duplicates(self) -> None:
        """A lost track overlapping a followed one by IoU > 0.85: keep the older of the two."""
        followed = [t for t in self._tracks if not t.lost and t.track_id >= 0]
        lost = [t for t in self._tracks if t.lost]
        if not followed or not lost:
            return
        a = Boxes(torch.from_numpy(np.stack([t.predicted_box() for t in followed])))
        b = Boxes(torch.from_numpy(np.stack([t.predicted_box() for t in lost])))
        drop = set()
        for i, j in zip(*np.nonzero(pairwise_iou(a, b).numpy() > _DUPLICATE_IOU)):
            f, g = followed[i], lost[j]
            older_lost = g.last_frame - g.start_frame > f.last_frame - f.start_frame
            drop.add(id(f) if older_lost else id(g))
        self._tracks = [t for t in self._tracks if id(t) not in drop]

    def _output(self, instances: Instances, assigned: dict[int, _Track]) -> Instances:
        order = sorted(assigned)
        out = instances[torch.as_tensor(order, dtype=torch.int64)]
        out.ID = [assigned[d].track_id for d in order]
        out.ID_period = [assigned[d].period for d in order]
        out.lost_frame_count = [0] * len(order)
        return out


def _boxes_array(instances: Instances) -> np.ndarray:
    boxes = instances.pred_boxes
    boxes = boxes.tensor if isinstance(boxes, Boxes) else torch.as_tensor(boxes)
    return boxes.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)


def _masks(instances: Instances) -> torch.Tensor:
    if not instances.has("pred_masks"):
        raise ValueError("match metric 'mask' needs instances with pred_masks")
    masks = getattr(instances.pred_masks, "tensor", instances.pred_masks)
    masks = torch.as_tensor(masks).detach().cpu()
    return masks > 0.5 if masks.is_floating_point() else masks.bool()


def _centre_shift(box: np.ndarray, predicted: np.ndarray) -> tuple[int, int]:
    """Whole-pixel (dx, dy) from the centre of `box` to the centre of `predicted`."""
    dx = (predicted[0] + predicted[2] - box[0] - box[2]) / 2
    dy = (predicted[1] + predicted[3] - box[1] - box[3]) / 2
    return int(round(dx)), int(round(dy))


def _shift_mask(mask: torch.Tensor | None, dx: int, dy: int) -> torch.Tensor:
    """(H, W) bool moved by (dx, dy) pixels; what leaves the frame is lost."""
    assert mask is not None
    h, w = mask.shape
    out = torch.zeros_like(mask)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y, dst_y = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
    src_x, dst_x = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
    out[dst_y, dst_x] = mask[src_y, src_x]
    return out

"""Detector-seeded SAM 2 tracking: new objects join at detection frames, ids stay stable."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_video_standin import StandInVideoPredictor  # noqa: E402

from masktron.structures import Boxes, Instances  # noqa: E402
from masktron.tracking.sam2_seeded import SAM2SeededTracker  # noqa: E402


def _folder(tmp_path, n: int) -> str:
    from PIL import Image

    for k in range(n):
        Image.fromarray(np.full((40, 60, 3), 10 * k, np.uint8)).save(tmp_path / f"{k:03d}.png")
    return str(tmp_path)


class _Detector:
    """Detections by frame brightness (= 10 * frame): object A from frame 0, B from frame 4."""

    def __init__(self):
        self.frames: list[int] = []

    def __call__(self, bgr: np.ndarray) -> dict:
        frame = int(round(bgr.mean() / 10))
        self.frames.append(frame)
        boxes = [[2 + 2 * frame, 2, 12 + 2 * frame, 12]]  # A: moves 2 px per frame, tracked
        classes, scores = [3], [0.9]
        boxes.append([40, 25, 50, 35])  # a weak detection: ignored
        classes.append(1)
        scores.append(0.2)
        if frame >= 4:
            boxes.append([30, 20, 40, 30])  # B: appears on frame 4
            classes.append(5)
            scores.append(0.8)
        result = Instances((40, 60))
        result.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        result.scores = torch.tensor(scores)
        result.pred_classes = torch.tensor(classes)
        return {"instances": result}


def test_objects_seeded_then_added_with_stable_ids(tmp_path):
    predictor = StandInVideoPredictor(step=2)
    detector = _Detector()
    tracker = SAM2SeededTracker(predictor, detector, score_thresh=0.5, detect_every=3)
    results = list(tracker.track(_folder(tmp_path, 9)))
    assert [t for t, _ in results] == list(range(9))
    assert detector.frames == [0, 3, 6]  # every 3 frames
    adds = [c for c in predictor.calls if c[0] == "add"]
    assert adds == [("add", 0, 1), ("add", 6, 2)]  # A on frame 0; B seen on frame 6
    for t, instances in results:
        expected_ids = [1] if t < 6 else [1, 2]
        assert instances.ID == expected_ids, t
        assert instances.pred_classes.tolist() == [3, 5][: len(expected_ids)]
        assert np.allclose(instances.scores.tolist(), [0.9, 0.8][: len(expected_ids)])
        mask = instances.pred_masks[0]
        x0 = 2 + 2 * t  # object A's stand-in mask moves 2 px per frame from its box
        assert mask[2:12, x0 : x0 + 10].all() and mask.sum() == 100
        assert instances.pred_boxes.tensor[0].tolist() == [x0, 2, x0 + 10, 12]


def test_nothing_detected_gives_empty_frames_until_something_is(tmp_path):
    class Late(_Detector):
        def __call__(self, bgr):
            out = super().__call__(bgr)
            if self.frames[-1] < 4:
                none = torch.zeros(len(out["instances"]), dtype=torch.bool)
                out["instances"] = out["instances"][none]
            return out

    predictor = StandInVideoPredictor()
    tracker = SAM2SeededTracker(predictor, Late(), detect_every=4)
    results = dict(tracker.track(_folder(tmp_path, 7)))
    assert sorted(results) == list(range(7))
    assert all(len(results[t]) == 0 for t in range(4))
    assert [results[t].ID for t in range(4, 7)] == [[1, 2]] * 3

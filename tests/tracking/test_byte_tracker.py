"""ByteTracker on hand-made sequences: motion model, low-score detections, track buffer."""

from __future__ import annotations

import numpy as np
from tracking_helpers import FRAME, make_instances, run

from masktron.tracking import BBoxIOUTracker, ByteTracker


def test_moving_object_survives_missed_frames_through_its_motion():
    # 30 px per frame, 100 px wide; missed on frames 5-7, so on frame 8 its box no longer
    # overlaps the last one seen (IoU 0): only the predicted motion can match it.
    frames = []
    for t in range(10):
        box = [30 * t, 100, 30 * t + 100, 200]
        frames.append(make_instances([box] if t not in (5, 6, 7) else []))
    assert run(ByteTracker(), frames) == [[1]] * 5 + [[]] * 3 + [[1]] * 2
    # Detectron2's trackers have no motion model: a new id after the gap
    d2 = BBoxIOUTracker(max_lost_frame_count=5)
    assert run(d2, frames)[8:] == [[1], [1]]


def test_two_crossing_objects():
    frames, expected = [], []
    for t in range(12):
        a = [20 * t, 100, 20 * t + 100, 200]
        b = [300 - 20 * t, 130, 400 - 20 * t, 230]  # overlapping boxes as they cross
        odd = t % 2 == 1
        frames.append(make_instances([b, a] if odd else [a, b]))
        expected.append([2, 1] if odd else [1, 2])
    assert run(ByteTracker(), frames) == expected


def test_low_score_detection_keeps_the_track():
    # an occluded frame scores 0.3: ByteTrack's second association keeps it; a lone 0.3
    # detection never starts a track
    box, other = [100, 100, 200, 200], [500, 300, 600, 400]
    scores = [0.9, 0.9, 0.3, 0.9]
    frames = [make_instances([box, other], [s, 0.3]) for s in scores]
    assert run(ByteTracker(), frames) == [[1], [1], [1], [1]]


def _leave_and_return(missing: int) -> list[list[int]]:
    box = [[100, 100, 200, 200]]
    present = [True] * 3 + [False] * missing + [True] * 2
    return run(ByteTracker(track_buffer=3), [make_instances(box if p else []) for p in present])


def test_leave_and_return_within_track_buffer():
    assert _leave_and_return(3) == [[1], [1], [1], [], [], [], [1], [1]]


def test_leave_and_return_after_track_buffer():
    # forgotten; back as a new track, confirmed (and shown) from its second frame
    assert _leave_and_return(4) == [[1], [1], [1], [], [], [], [], [], [2]]


def test_new_tracks_are_confirmed_on_their_second_frame():
    a, b = [100, 100, 200, 200], [400, 100, 500, 200]
    frames = [make_instances([a]), make_instances([a]), make_instances([a, b])]
    frames += [make_instances([a, b]), make_instances([b])]
    tracker = ByteTracker()
    outs = [tracker.update(f) for f in frames]
    assert [o.ID for o in outs] == [[1], [1], [1], [1, 2], [2]]
    assert [o.ID_period for o in outs] == [[1], [2], [3], [4, 2], [3]]
    assert outs[3].scores.shape == (2,) and outs[3].pred_boxes.tensor.shape == (2, 4)


def test_mask_metric_tells_apart_objects_with_one_box():
    h, w = FRAME
    yy, xx = np.mgrid[:h, :w]
    inside = (xx >= 100) & (xx < 300) & (yy >= 100) & (yy < 300)
    upper, lower = inside & (xx - 100 > yy - 100), inside & (xx - 100 < yy - 100)
    box = [100, 100, 300, 300]
    frames = [make_instances([box, box], masks=np.stack([upper, lower]))]
    frames.append(make_instances([box, box], masks=np.stack([lower, upper])))
    assert run(ByteTracker(match_metric="mask"), frames) == [[1, 2], [2, 1]]

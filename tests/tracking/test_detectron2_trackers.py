"""Detectron2's trackers on hand-made sequences: ids frame by frame, by Detectron2's rules."""

from __future__ import annotations

import numpy as np
import pytest
from tracking_helpers import FRAME, make_instances, run

from masktron.config import get_cfg
from masktron.tracking import (
    BBoxIOUTracker,
    IOUWeightedHungarianBBoxIOUTracker,
    VanillaHungarianBBoxIOUTracker,
    build_tracker_head,
    instantiate_tracker,
)

D2_TRACKERS = [BBoxIOUTracker, VanillaHungarianBBoxIOUTracker, IOUWeightedHungarianBBoxIOUTracker]


def _tracker(cls, **kwargs):
    return cls(video_height=FRAME[0], video_width=FRAME[1], **kwargs)


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_detectron2_documented_example(cls):
    # Detectron2's own test case: two boxes that swap their order in the detections.
    tracker = _tracker(cls)
    first = tracker.update(make_instances([[101, 101, 200, 200], [301, 301, 450, 450]]))
    assert first.ID == [0, 1] and first.ID_period == [1, 1]
    second = tracker.update(make_instances([[302, 303, 451, 452], [101, 102, 201, 203]]))
    assert second.ID == [1, 0] and second.ID_period == [2, 2] and second.lost_frame_count == [0, 0]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_moving_object_keeps_its_id(cls):
    tracker = _tracker(cls)
    periods = []
    for t in range(6):  # 10 px per frame: IoU 0.82 with the previous box
        out = tracker.update(make_instances([[100 + 10 * t, 100, 200 + 10 * t, 200]]))
        assert out.ID == [0]
        periods.append(out.ID_period[0])
    assert periods == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_two_crossing_objects(cls):
    # A moves right, B left, their boxes overlap while they cross (IoU <= 0.25 between them);
    # on odd frames B is listed first. Each keeps its id: A = 0, B = 1.
    frames, expected = [], []
    for t in range(12):
        a = [20 * t, 100, 20 * t + 100, 200]
        b = [300 - 20 * t, 160, 400 - 20 * t, 260]
        odd = t % 2 == 1
        frames.append(make_instances([b, a] if odd else [a, b]))
        expected.append([1, 0] if odd else [0, 1])
    assert run(_tracker(cls), frames) == expected


def test_greedy_and_hungarian_differ_as_in_detectron2():
    # Current box 0 overlaps both previous boxes (IoU 0.54 with box 0, 0.82 with box 1); current
    # box 1 overlaps only previous box 0 (0.90; 0.48 with box 1). The greedy tracker visits
    # (0, 0) first and takes it, so current box 1 gets a new id; the assignments match both.
    prev = [[0, 0, 100, 100], [40, 0, 140, 100]]
    curr = [[30, 0, 130, 100], [5, 0, 105, 100]]
    expected = {
        BBoxIOUTracker: [0, 2],
        VanillaHungarianBBoxIOUTracker: [1, 0],
        IOUWeightedHungarianBBoxIOUTracker: [1, 0],
    }
    for cls, ids in expected.items():
        assert run(_tracker(cls), [make_instances(prev), make_instances(curr)]) == [[0, 1], ids]


def test_weighted_hungarian_prefers_the_closer_box():
    # Both assignments match two pairs; the weighted one takes the larger summed IoU.
    prev = [[0, 0, 100, 100], [20, 0, 120, 100]]
    curr = [[18, 0, 118, 100], [2, 0, 102, 100]]
    ids = run(
        _tracker(IOUWeightedHungarianBBoxIOUTracker), [make_instances(p) for p in (prev, curr)]
    )
    assert ids == [[0, 1], [1, 0]]


def _leave_and_return(cls, missing: int, **kwargs):
    box = [[100, 100, 200, 200]]
    present = [True] * 2 + [False] * missing + [True] * 2
    tracker = _tracker(cls, **kwargs)
    return [tracker.update(make_instances(box if p else [])) for p in present]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_leave_and_return_within_max_lost_frame_count(cls):
    outs = _leave_and_return(cls, missing=2, max_lost_frame_count=2)
    # frames without the object carry it over (same id, lost_frame_count counting up)
    assert [o.ID for o in outs] == [[0], [0], [0], [0], [0], [0]]
    assert [o.lost_frame_count for o in outs] == [[0], [0], [1], [2], [0], [0]]
    assert [o.ID_period for o in outs] == [[1], [2], [2], [2], [3], [4]]
    assert np.allclose(outs[3].pred_boxes.tensor.numpy(), [[100, 100, 200, 200]])


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_leave_and_return_after_max_lost_frame_count(cls):
    outs = _leave_and_return(cls, missing=3, max_lost_frame_count=2)
    assert [o.ID for o in outs] == [[0], [0], [0], [0], [], [1], [1]]
    assert [o.lost_frame_count for o in outs] == [[0], [0], [1], [2], [], [0], [0]]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_missed_detection_with_default_settings_gives_a_new_id(cls):
    # Detectron2's default max_lost_frame_count = 0 forgets an object missed for one frame.
    outs = _leave_and_return(cls, missing=1)
    assert [o.ID for o in outs] == [[0], [0], [], [1], [1]]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_carry_over_rules(cls):
    # seen once (ID_period 1 <= min_instance_period): not carried over
    tracker = _tracker(cls, max_lost_frame_count=5)
    tracker.update(make_instances([[100, 100, 200, 200]]))
    assert len(tracker.update(make_instances([]))) == 0
    # a box narrower than min_box_rel_dim of the frame width: not carried over
    tracker = _tracker(cls, max_lost_frame_count=5)
    small, large = [300, 100, 310, 200], [100, 100, 200, 200]  # 10 px < 0.02 * 800
    tracker.update(make_instances([small, large]))
    tracker.update(make_instances([small, large]))
    out = tracker.update(make_instances([]))
    assert out.ID == [1] and out.lost_frame_count == [1]


@pytest.mark.parametrize("cls", D2_TRACKERS)
def test_mask_iou_tells_apart_objects_with_one_box(cls):
    # Two triangles sharing a bounding box; the detections swap order on the second frame.
    h, w = FRAME
    yy, xx = np.mgrid[:h, :w]
    inside = (xx >= 100) & (xx < 300) & (yy >= 100) & (yy < 300)
    upper, lower = inside & (xx - 100 > yy - 100), inside & (xx - 100 < yy - 100)
    box = [100, 100, 300, 300]
    first = make_instances([box, box], masks=np.stack([upper, lower]))
    second = make_instances([box, box], masks=np.stack([lower, upper]))
    assert run(_tracker(cls, match_metric="mask"), [first, second]) == [[0, 1], [1, 0]]


def test_build_from_config_and_target_dict():
    cfg = get_cfg()
    cfg.TRACKER_HEADS.TRACKER_NAME = "VanillaHungarianBBoxIOUTracker"
    cfg.TRACKER_HEADS.VIDEO_HEIGHT = 600
    cfg.TRACKER_HEADS.MAX_LOST_FRAME_COUNT = 4
    tracker = build_tracker_head(cfg)
    assert isinstance(tracker, VanillaHungarianBBoxIOUTracker)
    assert tracker._video_height == 600 and tracker._max_lost_frame_count == 4
    spec = {
        "_target_": "detectron2.tracking.bbox_iou_tracker.BBoxIOUTracker",
        "video_height": 600,
        "video_width": 800,
        "track_iou_threshold": 0.3,
    }
    tracker = instantiate_tracker(spec)
    assert isinstance(tracker, BBoxIOUTracker) and tracker._track_iou_threshold == 0.3
    assert isinstance(instantiate_tracker("hungarian"), IOUWeightedHungarianBBoxIOUTracker)
    with pytest.raises(ValueError, match="TRACKER_HEADS.TRACKER_NAME: unknown tracker 'Nope'"):
        cfg.TRACKER_HEADS.TRACKER_NAME = "Nope"
        build_tracker_head(cfg)
    with pytest.raises(TypeError, match="unknown arguments"):
        instantiate_tracker("iou", max_lost=3)


def test_detectron2_import_paths():
    from masktron.tracking.base_tracker import build_tracker_head as from_base
    from masktron.tracking.iou_weighted_hungarian_bbox_iou_tracker import (
        IOUWeightedHungarianBBoxIOUTracker as Weighted,
    )
    from masktron.tracking.vanilla_hungarian_bbox_iou_tracker import (
        VanillaHungarianBBoxIOUTracker as Vanilla,
    )

    assert (
        Weighted is IOUWeightedHungarianBBoxIOUTracker and Vanilla is VanillaHungarianBBoxIOUTracker
    )
    cfg = get_cfg()
    cfg.TRACKER_HEADS.TRACKER_NAME = "IOUWeightedHungarianBBoxIOUTracker"
    assert isinstance(from_base(cfg), Weighted)


def test_pairwise_mask_iou_equals_a_whole_frame_count():
    from masktron.tracking import pairwise_mask_iou

    rng = np.random.default_rng(0)
    a = rng.random((6, 40, 50)) > 0.6
    a[:, :, 25:] &= rng.random((6, 1, 1)) > 0.5  # some masks only on the left half
    a[2] = False  # an empty mask
    b = np.concatenate([a[:3], rng.random((4, 40, 50)) > 0.7])
    inter = np.einsum("ihw,jhw->ij", a.astype(int), b.astype(int))
    union = a.sum((1, 2))[:, None] + b.sum((1, 2))[None, :] - inter
    expected = np.where(union > 0, inter / np.maximum(union, 1), 0)
    got = pairwise_mask_iou(a, b).numpy()
    assert np.allclose(got, expected, atol=1e-6) and got[0, 0] == 1.0 and got[2, 2] == 0.0

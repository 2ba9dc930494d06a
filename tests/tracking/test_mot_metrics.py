"""MOTA / IDF1 on a small synthetic sequence with known ids, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from masktron.tracking.mot import mot_metrics, read_mot_txt, write_mot_txt

A, B = [0, 0, 10, 10], [20, 0, 30, 10]
# Ground truth: objects 1 (at A) and 2 (at B) on frames 1-4.
GT = {f: [(1, A), (2, B)] for f in (1, 2, 3, 4)}
# The tracker: 7 follows object 1 throughout; 8 follows object 2 on frames 1-2, misses it on
# frame 3 (its box there has IoU 0.43 < 0.5 with B), and on frame 4 object 2 comes back as 10
# (an id switch). 9 is a false positive far away.
PRED = {
    1: [(7, A), (8, B)],
    2: [(7, A), (8, B), (9, [50, 50, 60, 60])],
    3: [(7, A), (11, [24, 0, 34, 10])],
    4: [(7, A), (10, B)],
}


def test_scores_match_a_hand_count():
    m = mot_metrics(GT, PRED)
    # 8 objects; matches 2 + 2 + 1 + 2 = 7; misses: B on frame 3; false positives: 9 and 11
    assert (m["GT"], m["predictions"], m["TP"], m["FN"], m["FP"], m["IDSW"]) == (8, 9, 7, 1, 2, 1)
    assert m["MOTA"] == pytest.approx(1 - (1 + 2 + 1) / 8)  # 0.5
    # best one-to-one pairing: 1<->7 (4 frames), 2<->8 (2 frames): IDTP = 6
    assert m["IDTP"] == 6
    assert m["IDF1"] == pytest.approx(2 * 6 / (8 + 9))
    assert (m["IDP"], m["IDR"]) == (pytest.approx(6 / 9), pytest.approx(6 / 8))


def test_perfect_tracking_and_a_swap():
    assert mot_metrics(GT, {f: [(5, A), (6, B)] for f in GT})["MOTA"] == 1.0
    # ids exchanged from frame 3 on: two switches, IDF1 = 2 * 4 / 16
    swapped = {f: [(5, A), (6, B)] if f < 3 else [(6, A), (5, B)] for f in GT}
    m = mot_metrics(GT, swapped)
    assert (m["IDSW"], m["MOTA"], m["IDF1"]) == (2, 1 - 2 / 8, 0.5)


def test_mot_file_round_trip_and_bad_line(tmp_path):
    rows = [(f, i, *box, 0.9) for f, objs in PRED.items() for i, box in objs]
    write_mot_txt(tmp_path / "t.txt", rows)
    back = read_mot_txt(tmp_path / "t.txt")
    assert {f: [(i, list(b)) for i, b in v] for f, v in back.items()} == {
        f: [(i, [float(x) for x in b]) for i, b in v] for f, v in PRED.items()
    }
    (tmp_path / "bad.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected"):
        read_mot_txt(tmp_path / "bad.txt")


def test_agrees_with_py_motmetrics():
    mm = pytest.importorskip("motmetrics")
    acc = mm.MOTAccumulator(auto_id=True)
    for f in sorted(GT):
        g_ids, g_boxes = zip(*GT[f])
        p_ids, p_boxes = zip(*PRED[f])
        g, p = np.array(g_boxes, float), np.array(p_boxes, float)
        lt = np.maximum(g[:, None, :2], p[None, :, :2])
        inter = np.clip(np.minimum(g[:, None, 2:], p[None, :, 2:]) - lt, 0, None).prod(2)
        area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
        iou = inter / (area(g)[:, None] + area(p)[None, :] - inter)
        acc.update(list(g_ids), list(p_ids), np.where(iou >= 0.5, 1 - iou, np.nan))
    ref = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x")
    ours = mot_metrics(GT, PRED)
    assert ours["MOTA"] == pytest.approx(float(ref["mota"].iloc[0]))
    assert ours["IDF1"] == pytest.approx(float(ref["idf1"].iloc[0]))
    assert ours["IDSW"] == int(ref["num_switches"].iloc[0])

"""The drawn video and the files of `masktron predict` on video, from hand-made tracked frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("av")

from masktron.cli.video_outputs import TrackWriter  # noqa: E402
from masktron.data.video import VideoFrame, VideoReader  # noqa: E402
from masktron.data.video_sources import VideoInfo  # noqa: E402
from masktron.structures import Boxes, Instances  # noqa: E402
from masktron.tracking.mot import read_mot_txt  # noqa: E402

H, W = 96, 128
BOXES = {3: [10, 20, 50, 70], 8: [70, 30, 110, 80]}  # track id -> XYXY


def _tracked(ids: list[int]) -> Instances:
    masks = np.zeros((len(ids), H, W), dtype=bool)
    for k, i in enumerate(ids):
        x0, y0, x1, y1 = BOXES[i]
        masks[k, y0:y1, x0:x1] = True
    return Instances(
        (H, W),
        pred_boxes=Boxes(torch.tensor([BOXES[i] for i in ids], dtype=torch.float32)),
        scores=torch.tensor([0.9] * len(ids)),
        pred_classes=torch.zeros(len(ids), dtype=torch.int64),
        pred_masks=torch.from_numpy(masks),
        ID=ids,
    )


def _run(tmp_path, labels: bool):
    info = VideoInfo("clip", 10.0, W, H, None)
    writer = TrackWriter(str(tmp_path), info, fps=10.0, metadata=None, tracker="x", labels=labels)
    gray = np.full((H, W, 3), 60, np.uint8)
    # the two tracks listed in one order, then the other: colours must follow the ids
    for index, ids in enumerate([[3, 8], [8, 3], [3]]):
        writer.add(VideoFrame(index, index / 10, gray), _tracked(ids))
    writer.close()
    return [f.image for f in VideoReader(tmp_path / "clip.mp4")]


def test_colours_follow_track_ids_and_files_are_complete(tmp_path):
    frames = _run(tmp_path, labels=True)
    assert len(frames) == 3
    centre = {i: ((y0 + y1) // 2 + 8, (x0 + x1) // 2) for i, (x0, y0, x1, y1) in BOXES.items()}
    colour = {i: [f[centre[i]].astype(int) for f in frames] for i in BOXES}
    for i in BOXES:  # the same colour on every frame where the track is (codec noise aside)
        assert np.abs(colour[i][0] - colour[i][1]).max() <= 12
    assert np.abs(colour[3][0] - colour[8][0]).max() > 30  # and different tracks differ
    assert np.abs(colour[8][2] - 60).max() <= 12  # track 8 is gone on frame 3: background
    coco = json.loads((tmp_path / "clip.json").read_text())
    assert [im["frame_id"] for im in coco["images"]] == [0, 1, 2]
    assert [(a["image_id"], a["track_id"]) for a in coco["annotations"]] == [
        (1, 3), (1, 8), (2, 8), (2, 3), (3, 3)
    ]  # fmt: skip
    assert coco["annotations"][0]["area"] == 40 * 50 and coco["annotations"][0]["bbox"] == [
        10, 20, 40, 50
    ]  # fmt: skip
    mot = read_mot_txt(tmp_path / "clip_mot.txt")
    assert mot[1] == [(3, [10.0, 20.0, 50.0, 70.0]), (8, [70.0, 30.0, 110.0, 80.0])]
    assert sorted(mot) == [1, 2, 3]


def test_labels_can_be_left_out(tmp_path):
    labelled = _run(tmp_path / "a", labels=True)
    plain = _run(tmp_path / "b", labels=False)  # only "#id" is drawn
    assert np.abs(labelled[0].astype(int) - plain[0].astype(int)).sum() > 0

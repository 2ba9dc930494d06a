"""`masktron predict` on videos: a frame whose prediction fails, or a video that cannot be
opened, costs only itself (reported, listed in failed.json, the rest still written)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from PIL import Image

pytest.importorskip("av")

from masktron.cli import predict_video  # noqa: E402
from masktron.cli.failures import FailureLog  # noqa: E402
from masktron.structures import Boxes, Instances  # noqa: E402


class _FailsOnGrey:
    """One box per frame; fails on the frames whose first pixel is one of `grey`."""

    def __init__(self, *grey: int):
        self.grey = set(grey)

    def __call__(self, bgr):
        if int(bgr[0, 0, 0]) in self.grey:
            raise RuntimeError("simulated failure\ndeep inside the model")
        h, w = bgr.shape[:2]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor([[2.0, 2.0, w - 3.0, h - 3.0]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_classes = torch.tensor([0])
        return {"instances": inst}


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(4):  # frame k is grey k * 40
        Image.new("RGB", (64, 48), (k * 40,) * 3).save(folder / f"{k:03d}.png")
    return folder


def _run(predictor, sources, out):
    args = argparse.Namespace(out=str(out), fps=10.0, start=0.0, end=None, every=1)
    failures = FailureLog(str(out), what="video")
    predict_video.predict_sources(predictor, None, None, sources, args, "none", failures)
    return failures.finish()


def test_failed_frame_and_unreadable_video_cost_only_themselves(frames, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    out = tmp_path / "out"
    assert _run(_FailsOnGrey(80), [str(broken), str(frames)], out) == 1
    failed = json.loads((out / "failed.json").read_text())
    assert [f["file"] for f in failed] == [str(broken), str(frames)]
    assert failed[0]["reason"].startswith("cannot open as a video")
    assert failed[1]["reason"] == (
        "1 frame(s) failed and were left out (2; frame 2: simulated failure deep inside the "
        f"model); wrote the other 3 frame(s) to {out}"
    )
    err = capsys.readouterr().err
    assert f"{frames}: frame 2: simulated failure deep inside the model" in err
    assert f"masktron: 2 of 2 video(s) failed (listed in {out}/failed.json)" in err
    coco = json.loads((out / "frames.json").read_text())
    assert [im["frame_id"] for im in coco["images"]] == [0, 1, 3]  # the others are written
    assert len(coco["annotations"]) == 3


def test_failures_in_a_row_stop_the_video(frames, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_video._FailedFrames, "MAX_IN_A_ROW", 2)
    out = tmp_path / "out"
    assert _run(_FailsOnGrey(0, 40), [str(frames)], out) == 1
    (failed,) = json.loads((out / "failed.json").read_text())
    assert failed["reason"].startswith("stopped after 2 frames in a row failed (first: frame 0")
    assert json.loads((out / "frames.json").read_text())["images"] == []  # frames 2, 3 not run
    assert _run(_FailsOnGrey(0, 80), [str(frames)], out) == 1  # apart: the video goes on
    (failed,) = json.loads((out / "failed.json").read_text())
    assert failed["reason"].startswith("2 frame(s) failed and were left out (0, 2; frame 0")
    images = json.loads((out / "frames.json").read_text())["images"]
    assert [im["frame_id"] for im in images] == [1, 3]
    assert _run(_FailsOnGrey(), [str(frames)], out) == 0
    assert json.loads((out / "failed.json").read_text()) == []

"""`masktron sam2` video outputs: prompts to objects, per-frame PNGs and RLE JSON, previews."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_video_standin import StandInVideoPredictor  # noqa: E402

from masktron.cli.sam2_video import VideoPrompt, group_prompts, track_video  # noqa: E402


def _folder(tmp_path, n=5, h=48, w=64) -> Path:
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir(parents=True)
    for k in range(n):
        Image.fromarray(np.full((h, w, 3), 20 * k, np.uint8)).save(folder / f"{k:05d}.jpg")
    return folder


def test_prompts_become_objects():
    prompts = group_prompts(
        points=[(10, 20, 1, 0), (30, 40, 0, 0), (5, 5, 1, 2)], boxes=[(1, 2, 3, 4, 0)]
    )
    assert [(p.obj_id, p.frame) for p in prompts] == [(1, 0), (2, 0), (3, 2)]
    assert prompts[0].box == (1, 2, 3, 4) and prompts[0].points == []
    # the negative point joins the last object prompted on its frame: the positive click
    assert prompts[1].points == [(10.0, 20.0), (30.0, 40.0)] and prompts[1].labels == [1, 0]
    with pytest.raises(ValueError, match="negative point needs an object"):
        group_prompts(points=[(1, 1, 0, 3)], boxes=[])


def test_outputs_of_a_tracked_folder(tmp_path):
    pytest.importorskip("av")
    import pycocotools.mask as mask_utils
    from PIL import Image

    from masktron.data.video import VideoReader

    predictor = StandInVideoPredictor(step=2)
    prompts = [
        VideoPrompt(1, 2, points=[(20.0, 20.0)], labels=[1]),  # from frame 2: also backwards
        VideoPrompt(2, 2, box=(30.0, 10.0, 50.0, 30.0)),
    ]
    out = tmp_path / "out"
    summary = track_video(predictor, str(_folder(tmp_path)), prompts, str(out), gif=True)
    assert summary["frames"] == 5 and summary["objects"] == [1, 2]
    assert ("propagate", 2, None, False) in predictor.calls  # forward from the first prompt
    assert ("propagate", 2, None, True) in predictor.calls  # then back to frame 0
    state = predictor.init_state(str(_folder(tmp_path / "again")))
    predictor.add_new_points_or_box(state, 2, 1, points=[[20.0, 20.0]], labels=[1])
    predictor.add_new_points_or_box(state, 2, 2, box=[30.0, 10.0, 50.0, 30.0])
    for t in range(5):
        record = json.loads((out / "clip_rle" / f"{t:05d}.json").read_text())
        assert (record["frame"], record["height"], record["width"]) == (t, 48, 64)
        assert [o["obj_id"] for o in record["objects"]] == [1, 2]
        for obj in record["objects"]:
            x0, y0, x1, y1 = predictor.mask_box(state, obj["obj_id"], t)
            expected = np.zeros((48, 64), bool)
            expected[max(y0, 0) : y1, max(x0, 0) : x1] = True
            assert np.array_equal(mask_utils.decode(obj["segmentation"]).astype(bool), expected)
            assert obj["area"] == expected.sum()
            assert obj["bbox"] == [max(x0, 0), max(y0, 0), x1 - max(x0, 0), y1 - max(y0, 0)]
            png = np.asarray(Image.open(out / "clip_masks" / f"{t:05d}_obj{obj['obj_id']}.png"))
            assert np.array_equal(png > 127, expected)
    reader = VideoReader(out / "clip_preview.mp4")
    assert (reader.info.num_frames, reader.info.width, reader.info.height) == (5, 64, 48)
    frames = [f.image for f in reader]
    assert frames[0][20, 20].std() > 5 or frames[0][20, 20].max() > 30  # a mask is drawn there
    gif = Image.open(out / "clip_preview.gif")
    assert gif.n_frames == 5 and gif.size == (64, 48)


def test_a_video_needs_prompts_in_range(tmp_path):
    from masktron.cli.main import CommandError

    folder = str(_folder(tmp_path, n=2))
    with pytest.raises(CommandError, match="needs prompts"):
        track_video(StandInVideoPredictor(), folder, [], str(tmp_path / "o"))
    with pytest.raises(CommandError, match="a prompt on frame 7, the video has 2 frames"):
        track_video(StandInVideoPredictor(), folder, [VideoPrompt(1, 7, box=(0, 0, 4, 4))], "o")

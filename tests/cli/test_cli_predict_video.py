"""`masktron predict` on video: the bedroom frames as a folder and as an MP4, tracked with the
bundled nuclei model; outputs complete, ids stable for what persists, broken video handled."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("av")

from masktron.cli.main import main  # noqa: E402
from masktron.data.video import VideoReader, VideoWriter  # noqa: E402
from masktron.tracking.mot import read_mot_txt  # noqa: E402

CONFIG = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"  # the bundled model: no download
N_FRAMES, SIZE, FPS = 6, (320, 180), 15.0
FAST = [
    "--conf", "0.3", "--device", "cpu", "--opts", "INPUT.MIN_SIZE_TEST", "180",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "600", "MODEL.RPN.POST_NMS_TOPK_TEST", "150",
]  # fmt: skip


@pytest.fixture(scope="module")
def bedroom(shared_dir, tmp_path_factory):
    """Every second of the first 12 bedroom frames, resized to 320x180: a folder and an MP4."""
    from PIL import Image

    root = tmp_path_factory.mktemp("bedroom")
    folder = root / "frames"
    folder.mkdir()
    frames = []
    for k in range(N_FRAMES):
        image = Image.open(shared_dir / "data" / "video_bedroom" / f"{2 * k:05d}.jpg")
        image = image.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)
        image.save(folder / f"{k:03d}.png")
        frames.append(np.asarray(image)[:, :, ::-1])  # BGR
    with VideoWriter(root / "bedroom.mp4", fps=FPS, width=SIZE[0], height=SIZE[1]) as writer:
        for f in frames:
            writer.write(f)
    return folder, root / "bedroom.mp4"


def _predict(source, out, *extra) -> int:
    return main(["predict", str(source), "--config", CONFIG, "--out", str(out), *extra, *FAST])


def _xyxy(bbox):
    x, y, w, h = bbox
    return np.array([x, y, x + w, y + h])


def _iou(a, b) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def _check_outputs(out, name, frame_ids):
    """Every frame in the MP4 and the JSON; MOT rows = annotations; ids stable by box IoU."""
    frames = list(VideoReader(out / f"{name}.mp4"))
    assert len(frames) == len(frame_ids) and frames[0].image.shape == (SIZE[1], SIZE[0], 3)
    coco = json.loads((out / f"{name}.json").read_text())
    assert [im["frame_id"] for im in coco["images"]] == frame_ids
    assert [c["name"] for c in coco["categories"]] == ["nucleus"]
    anns = coco["annotations"]
    assert {a["category_id"] for a in anns} == {coco["categories"][0]["id"]}
    assert anns and all("track_id" in a and a["segmentation"]["size"] == [180, 320] for a in anns)
    mot = read_mot_txt(out / f"{name}_mot.txt")
    assert sum(len(v) for v in mot.values()) == len(anns)
    assert set(mot) <= {f + 1 for f in frame_ids}  # MOT frames count from 1
    by_image: dict[int, list] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    persisting = 0
    for t in range(1, len(frame_ids)):
        now, nxt = by_image.get(t, []), by_image.get(t + 1, [])
        if not now or not nxt:
            continue
        iou = np.array([[_iou(_xyxy(a["bbox"]), _xyxy(b["bbox"])) for b in nxt] for a in now])
        for i in range(len(now)):
            j = int(iou[i].argmax())
            if iou[i, j] >= 0.8 and int(iou[:, j].argmax()) == i:  # clearly the same object
                assert now[i]["track_id"] == nxt[j]["track_id"], (t, now[i], nxt[j])
                persisting += 1
    assert persisting >= len(frame_ids) - 1  # some objects do persist: the check is not empty
    return coco


def test_frame_folder_with_bytetrack(bedroom, tmp_path, capsys):
    folder, _ = bedroom
    out = tmp_path / "out"
    assert _predict(folder, out, "--track", "bytetrack", "--fps", str(FPS)) == 0
    coco = _check_outputs(out, "frames", list(range(N_FRAMES)))
    assert coco["info"]["tracker"] == "bytetrack" and coco["videos"][0]["fps"] == FPS
    assert f"{N_FRAMES} frame(s)" in capsys.readouterr().out


def test_mp4_with_a_detectron2_tracker_a_start_time_and_every(bedroom, tmp_path):
    _, video = bedroom
    out = tmp_path / "out"
    # 0.1 s at 15 frame/s: frames 0 (0 s) and 1 (0.067 s) are skipped; then one in two
    assert _predict(video, out, "--track", "iou", "--start", "0.1", "--every", "2") == 0
    coco = _check_outputs(out, "bedroom", list(range(2, N_FRAMES, 2)))
    assert coco["videos"][0]["fps"] == FPS / 2
    assert VideoReader(out / "bedroom.mp4").info.fps == FPS / 2


def test_truncated_mp4_writes_what_was_decoded_and_exits_1(bedroom, tmp_path, capsys):
    _, video = bedroom
    cut = tmp_path / "cut.mp4"
    data = video.read_bytes()
    cut.write_bytes(data[: len(data) * 9 // 10])  # the last frames are cut off
    out = tmp_path / "out"
    assert _predict(cut, out, "--track", "hungarian") == 1
    err = capsys.readouterr().err
    assert "cut.mp4:" in err and "frame(s) read before it to" in err
    coco = json.loads((out / "cut.json").read_text())
    assert 0 < len(coco["images"]) < N_FRAMES
    assert len(list(VideoReader(out / "cut.mp4"))) == len(coco["images"])


def test_bad_video_arguments(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    base = ["predict", str(video), "--config", CONFIG, "--out", str(tmp_path)]
    photo = ["predict", str(tmp_path / "photo.jpg"), *base[1:]]
    assert main(["predict", str(tmp_path / "gone.mp4"), *base[2:]]) == 1
    assert "gone.mp4: no such file" in capsys.readouterr().err
    assert main([*base, "--start", "5", "--end", "2"]) == 1
    assert "--end 2s must come after --start 5s" in capsys.readouterr().err
    assert main(photo) == 1
    assert "photo.jpg: not a video" in capsys.readouterr().err  # images and videos mixed
    for bad in (["--every", "0"], ["--start", "1:xx"], ["--track", "sort"]):
        with pytest.raises(SystemExit) as e:
            main([*base, *bad])
        assert e.value.code == 2

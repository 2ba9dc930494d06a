"""`masktron predict FRAMES --track sam2` end to end: the bundled detector seeds SAM 2 (tiny
fixture checkpoint), which tracks its boxes; outputs written, ids stable.

Three bedroom frames at 320x180. The CLI builds SAM 2 from the checkpoint file given on the
command line; to fit CI's time the builder is wrapped so that the same file is loaded into a
model built at `image_size=256` (the released 1024 runs the same code at many times the cost;
parity at other sizes is tests/predictors/test_sam2_video.py's). At most two detections.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_fixtures_util import sam2_fixture_checkpoint  # noqa: E402

from masktron.cli.main import main  # noqa: E402
from masktron.data.video import VideoReader  # noqa: E402
from masktron.tracking.mot import read_mot_txt  # noqa: E402

CONFIG = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"  # the bundled model: no download
N_FRAMES, SIZE = 3, (320, 180)
FAST = [
    "--conf", "0.3", "--device", "cpu", "--opts", "INPUT.MIN_SIZE_TEST", "180",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "600", "MODEL.RPN.POST_NMS_TOPK_TEST", "150",
    "TEST.DETECTIONS_PER_IMAGE", "2",
]  # fmt: skip


@pytest.fixture
def frames(shared_dir, tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "bedroom"
    folder.mkdir()
    for k in range(N_FRAMES):
        image = Image.open(shared_dir / "data" / "video_bedroom" / f"{2 * k:05d}.jpg")
        image.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR).save(folder / f"{k}.png")
    return folder


def test_detector_seeded_sam2_tracks_a_frame_folder(frames, tmp_path, monkeypatch):
    import pycocotools.mask as mask_utils

    import masktron.predictors.sam2_video as sam2_video
    from masktron.models.sam2.build import build_sam2_model

    ckpt = sam2_fixture_checkpoint("sam2.1_hiera_t")
    built = []

    def build_small(config_file, ckpt_path, device="cpu", **kwargs):
        assert config_file is None and Path(ckpt_path) == ckpt and device == "cpu"
        model = build_sam2_model("sam2.1_hiera_t", video=True, checkpoint=ckpt_path, image_size=256)
        built.append(model)
        return sam2_video.SAM2VideoPredictor(model)

    monkeypatch.setattr(sam2_video, "build_sam2_video_predictor", build_small)
    out = tmp_path / "out"
    argv = ["predict", str(frames), "--config", CONFIG, "--out", str(out), "--track", "sam2"]
    assert main([*argv, "--sam2-checkpoint", str(ckpt), *FAST]) == 0
    assert len(built) == 1

    video = list(VideoReader(out / "bedroom.mp4"))
    assert len(video) == N_FRAMES and video[0].image.shape == (SIZE[1], SIZE[0], 3)
    coco = json.loads((out / "bedroom.json").read_text())
    assert [im["frame_id"] for im in coco["images"]] == list(range(N_FRAMES))
    ids_per_frame: dict[int, list[int]] = {im["id"]: [] for im in coco["images"]}
    for ann in coco["annotations"]:
        assert ann["segmentation"]["size"] == [SIZE[1], SIZE[0]]
        mask = mask_utils.decode(ann["segmentation"])
        assert mask.sum() == ann["area"] > 0  # tracked objects are written with their masks
        ids_per_frame[ann["image_id"]].append(ann["track_id"])
    first = ids_per_frame[coco["images"][0]["id"]]
    assert first and len(set(first)) == len(first) and len(first) <= 2  # seeded by the detector
    # the detector runs on frame 0 only (--detect-every 10): later frames hold the same objects,
    # each under its id (an object SAM 2 loses would be left out, never renamed)
    for im in coco["images"][1:]:
        later = ids_per_frame[im["id"]]
        assert later and set(later) <= set(first) and len(set(later)) == len(later)
    mot = read_mot_txt(out / "bedroom_mot.txt")
    assert sum(len(rows) for rows in mot.values()) == len(coco["annotations"])
    assert np.all([len(rows) > 0 for rows in mot.values()])

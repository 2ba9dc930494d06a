"""`masktron predict` over many images: path lists, JSON lines as it goes, --resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

import masktron.engine
from masktron.cli.demo import DEMO_CONFIG, DEMO_IMAGE_DIR
from masktron.cli.main import main
from masktron.cli.predict_stream import default_workers, read_path_list
from masktron.structures import Boxes, Instances

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _CountingPredictor:
    """One box per image, scored by its width; records which images it saw; raises
    KeyboardInterrupt (a killed run) on an image `stop_width` wide."""

    def __init__(self, cfg, stop_width: int = 0):
        self.seen: list[int] = []
        self.stop_width = stop_width

    def __call__(self, bgr):
        h, w = bgr.shape[:2]
        if w == self.stop_width:
            raise KeyboardInterrupt
        self.seen.append(w)
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, w - 1.0, h - 1.0]]))
        inst.scores = torch.tensor([w / 100])
        inst.pred_classes = torch.tensor([0])
        return {"instances": inst}


@pytest.fixture
def folder(tmp_path):
    """Five images 20..24 pixels wide (a.png .. e.png) and a broken c_bad.jpg."""
    images = tmp_path / "in"
    images.mkdir()
    for k, name in enumerate("abcde"):
        Image.new("RGB", (20 + k, 10), (k, 0, 0)).save(images / f"{name}.png")
    (images / "c_bad.jpg").write_bytes(b"not an image")
    return images


def _predict(monkeypatch, predictor, inputs, out, *flags) -> int:
    monkeypatch.setattr(masktron.engine, "DefaultPredictor", lambda cfg: predictor)
    argv = ["predict", *map(str, inputs), "--config", CONFIG, "--weights", "unused.pkl"]
    return main([*argv, "--out", str(out), "--device", "cpu", *flags])


def _lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_resume_skips_finished_images_redoes_a_half_written_one_and_loses_none(
    folder, tmp_path, monkeypatch
):
    full, out = tmp_path / "full", tmp_path / "out"
    everything = _CountingPredictor(None)
    assert _predict(monkeypatch, everything, [folder], full, "--workers", "1") == 1  # c_bad
    assert sorted(everything.seen) == [20, 21, 22, 23, 24]
    lines = _lines(full)
    assert [r["file_name"] for r in lines] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert [r["image_id"] for r in lines] == [1, 2, 3, 5, 6]  # c_bad.jpg is input 4
    # An interrupted run: stopped at d.png (23 wide), killed while writing c.png's line.
    killed = _CountingPredictor(None, stop_width=23)
    assert _predict(monkeypatch, killed, [folder], out, "--workers", "0") == 130
    assert len(_lines(out)) == 3 and not (out / "results.json").exists()
    text = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "predictions.jsonl").write_text(text[0] + text[2][:40])
    (out / "predictions.rank1.jsonl").write_text(text[1])  # as a killed torchrun run leaves
    resumed = _CountingPredictor(None)
    assert _predict(monkeypatch, resumed, [folder], out, "--resume") == 1
    assert sorted(resumed.seen) == [22, 23, 24]  # c.png (half-written), d.png, e.png
    assert sorted(_lines(out), key=lambda r: r["file"]) == lines  # b.png's merged in
    assert not (out / "predictions.rank1.jsonl").exists()
    assert (out / "results.json").read_text() == (full / "results.json").read_text()
    failed = json.loads((out / "failed.json").read_text())
    assert [os.path.basename(f["file"]) for f in failed] == ["c_bad.jpg"]  # retried, again
    # Nothing left: a second resume predicts nothing; without --resume all starts over.
    again = _CountingPredictor(None)
    assert _predict(monkeypatch, again, [folder / "a.png"], out, "--resume") == 0
    assert again.seen == [] and len(_lines(out)) == 5
    assert json.loads((out / "results.json").read_text()) == [lines[0]["results"][0]]
    assert _predict(monkeypatch, again, [folder / "a.png"], out) == 0
    assert again.seen == [20] and len(_lines(out)) == 1


def test_a_text_file_lists_the_images(folder, tmp_path, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\nin/b.png\n\n{folder / 'a.png'}\nin/./b.png\n")
    b_png = str(tmp_path / "in" / "b.png")
    assert read_path_list(str(listing)) == [
        b_png,
        str(folder / "a.png"),
        os.path.join(str(tmp_path), "in/./b.png"),
    ]
    seen = _CountingPredictor(None)
    assert _predict(monkeypatch, seen, [listing], tmp_path / "out", "--jsonl-only") == 0
    assert seen.seen == [21, 20] and not (tmp_path / "out" / "results.json").exists()  # b once
    assert [r["file_name"] for r in _lines(tmp_path / "out")] == ["b.png", "a.png"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    assert _predict(monkeypatch, seen, [tmp_path / "empty.txt"], tmp_path / "o2") == 1


def test_videos_are_refused_under_torchrun(tmp_path, monkeypatch, capsys):
    env = {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["predict", str(tmp_path / "walk.mp4"), "--config", CONFIG, "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "videos run in one process" in capsys.readouterr().err


def test_default_workers():
    assert default_workers(0) == default_workers(1) == 0
    assert 1 <= default_workers(1000) <= 4


def _detections(out) -> list[dict]:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_torchrun_two_processes_give_the_results_of_one(tmp_path):
    """2 CPU processes (gloo) under torchrun, the bundled model on its 3 images: the same
    detections as one process (up to float rounding: torchrun runs 1 thread per process)."""
    images = sorted(f for f in os.listdir(DEMO_IMAGE_DIR) if f.endswith(".png"))
    listing = tmp_path / "images.txt"
    listing.write_text("".join(os.path.join(DEMO_IMAGE_DIR, f) + "\n" for f in images))
    common = ["--config", DEMO_CONFIG, "--conf", "0.3", "--device", "cpu"]
    common += ["INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "256"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["predict", DEMO_IMAGE_DIR, "--out", str(one), "--workers", "0", *common]) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    command = [*torchrun, "2", "-m", "masktron", "predict", str(listing), "--out", str(two)]
    command += ["--workers", "1", "--batch-size", "2", *common]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote 3 image(s)" in done.stdout
    assert sorted(os.listdir(two)) == sorted(
        [*images, "failed.json", "predictions.jsonl", "results.json"]
    )
    assert sorted(r["file_name"] for r in _lines(two)) == images  # each image once
    expected, got = _detections(one), _detections(two)
    assert len(expected) == len(got) > 10
    for a, b in zip(expected, got):
        assert (a["image_id"], a["file_name"], a["category_id"]) == (
            b["image_id"], b["file_name"], b["category_id"],
        )  # fmt: skip
        np.testing.assert_allclose(b["bbox"], a["bbox"], atol=0.01)
        assert b["score"] == pytest.approx(a["score"], abs=1e-4)
        masks = [mask_util.decode(r["segmentation"]).astype(bool) for r in (a, b)]
        assert (masks[0] != masks[1]).sum() <= 2

"""`masktron sam --checkpoint vit_b`: model names and official file names go through the
download cache (offline: the URL and the path in the message), a bar while encoding, folders."""

from __future__ import annotations

import json
import shutil
import urllib.error

import pytest
import torch
from fixtures_util_sam import load_rgb, tiny_sam
from PIL import Image

from masktron.checkpoint import download
from masktron.cli.main import main
from masktron.model_zoo.sam_checkpoints import SAM_CHECKPOINTS, resolve_sam_checkpoint
from masktron.models.sam import build as sam_build


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(download, "urlopen", refuse)
    monkeypatch.setenv("MASKTRON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sam_build.sam_model_registry, "vit_b", lambda: tiny_sam(1))
    return tmp_path / "cache"


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rgb = load_rgb("astronaut")
    Image.fromarray(rgb[100:160, 200:280]).save(folder / "a.png")
    Image.fromarray(rgb[0:50, 0:70]).save(folder / "b.png")
    return folder


def test_names_and_official_file_names_resolve_to_metas_urls(tmp_path):
    assert resolve_sam_checkpoint("vit_b") == (SAM_CHECKPOINTS["vit_b"], "vit_b")
    url, name = resolve_sam_checkpoint("sam_vit_h_4b8939.pth")  # not downloaded: the URL
    assert url.endswith("/segment_anything/sam_vit_h_4b8939.pth") and name == "vit_h"
    local = tmp_path / "sam_vit_h_4b8939.pth"
    local.write_bytes(b"")
    assert resolve_sam_checkpoint(str(local)) == (str(local), None)  # a file is a file


def test_offline_message_names_the_url_and_the_cache_path(offline_cache, photos, capsys):
    args = ["sam", str(photos / "a.png"), "--checkpoint", "sam_vit_b_01ec64.pth", "--auto"]
    assert main([*args, "--out", str(photos.parent / "out")]) == 1
    err = capsys.readouterr().err
    assert SAM_CHECKPOINTS["vit_b"] in err
    assert str(offline_cache / "segment_anything" / "sam_vit_b_01ec64.pth") in err


def test_cached_model_name_encodes_with_a_bar_and_takes_a_folder(offline_cache, photos, capsys):
    dest = download.cache_path(SAM_CHECKPOINTS["vit_b"])
    (offline_cache / "segment_anything").mkdir(parents=True)
    torch.save(tiny_sam(0).state_dict(), dest)
    out = photos.parent / "out"
    extra = ["--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
    args = ["sam", str(photos), "--checkpoint", "vit_b", "--auto", "--device", "cpu", *extra]
    assert main([*args, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "encoding a.png" in err and "encoding b.png" in err and "block" in err
    for stem, size in (("a", [60, 80]), ("b", [50, 70])):
        summary = json.loads((out / f"{stem}_masks.json").read_text())
        assert [summary["height"], summary["width"]] == size
        assert summary["image"].endswith(f"{stem}.png")
    shutil.rmtree(out)

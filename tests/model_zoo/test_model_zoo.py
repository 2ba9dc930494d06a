"""Model zoo: names, URLs, published figures, and the offline user path (a URL fails with
where to put the file; a file put there by hand is used)."""

import os
import shutil
import urllib.error

import pytest
import torch

from masktron import model_zoo
from masktron.checkpoint import DownloadError, download
from masktron.checkpoint.cache_check import file_digests
from masktron.checkpoint.download import cache_path
from masktron.cli.main import main

NAME = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


def test_every_zoo_entry_has_a_config_and_detectron2_url():
    for key, entry in model_zoo.ZOO.items():
        ext = ".py" if key.startswith("new_baselines/") else ".yaml"  # LazyConfigs
        path = model_zoo.get_config_file(key + ext)
        assert os.path.isfile(path)
        url = model_zoo.get_checkpoint_url(key + ext)
        if key.startswith("masktron/"):
            assert url.startswith("masktron://weights/")
        else:
            assert url.startswith(f"https://dl.fbaipublicfiles.com/detectron2/{key}/")
        assert (entry.box_ap is None) == key.startswith("COCO-Detection/rpn_")
        assert (entry.proposal_ar is None) != key.startswith("COCO-Detection/rpn_")
    # every COCO config shipped has published weights, but the GIoU one (Detectron2 has none)
    coco = [n[:-5] for n in model_zoo.list_configs() if n.startswith("COCO-")]
    coco.remove("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou")
    assert sorted(k for k in model_zoo.ZOO if k.startswith("COCO-")) == sorted(coco)
    assert len(coco) == 33 and model_zoo.ZOO["COCO-Detection/rpn_R_50_FPN_1x"].proposal_ar == 58
    assert model_zoo.get_checkpoint_url(NAME) == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/"
        "mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
    )
    assert model_zoo.ZOO[NAME[:-5]].mask_ap == 37.2


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(
        RuntimeError, match="did you mean 'COCO-InstanceSegmentation/mask_rcnn_R_50"
    ):
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R50_FPN_3x.yaml")
    with pytest.raises(RuntimeError, match="no trained weights"):
        model_zoo.get_checkpoint_url("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr("masktron.checkpoint.download.urlopen", refuse)
    monkeypatch.setenv("MASKTRON_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_offline_url_names_the_url_and_where_to_put_the_file(offline, tmp_path, capsys):
    url = model_zoo.get_checkpoint_url(NAME)
    with pytest.raises(DownloadError) as err:
        model_zoo.get(NAME, trained=True, device="cpu")
    assert url in str(err.value) and cache_path(url) in str(err.value)
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(photo)
    args = [
        "predict",
        str(photo),
        "--config",
        NAME,
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    ]
    assert main(args) == 1
    assert url in capsys.readouterr().err


def test_a_file_placed_by_hand_in_the_cache_is_used(offline, mask_rcnn_zoo_pkl, monkeypatch):
    url = model_zoo.get_checkpoint_url(NAME)
    os.makedirs(os.path.dirname(cache_path(url)))
    shutil.copy(mask_rcnn_zoo_pkl, cache_path(url))
    # A cache hit is checked against the md5 prefix in the official name; the fixture file stands
    # in for the official one, so the check expects the fixture's own digest.
    md5 = file_digests(str(mask_rcnn_zoo_pkl), {"md5"})["md5"]
    monkeypatch.setattr(download, "expected_digests", lambda url, sha256=None: [("md5", md5[:6])])
    model = model_zoo.get(NAME, trained=True, device="cpu")
    assert model.training  # as Detectron2's model_zoo.get returns it
    import pickle

    with open(mask_rcnn_zoo_pkl, "rb") as f:
        expected = pickle.load(f)["model"]["roi_heads.box_predictor.cls_score.weight"]
    got = model.roi_heads.box_predictor.cls_score.weight.detach()
    assert torch.equal(got, torch.from_numpy(expected))

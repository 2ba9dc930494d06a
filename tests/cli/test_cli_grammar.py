"""One override grammar (trailing KEY VALUE or --opts) with overrides winning over flags; zoo
config files load the zoo's weights; --no-labels (issue 17, frictions 3 and 10)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from masktron import model_zoo
from masktron.cli.main import _take_trailing_overrides, build_parser
from masktron.cli.predict import setup_cfg
from masktron.cli.run_config import collect_overrides

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
ROI, RETINA = "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.RETINANET.SCORE_THRESH_TEST"


def _parse(argv):
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        _take_trailing_overrides(args, extra)
    return args


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "x.jpg", "--config", CONFIG, "--out", "o", "--conf", ".7", "--opts", ROI, ".3"],
        ["predict", "x.jpg", ROI, "0.3", "--config", CONFIG, "--out", "o", "--conf", "0.7"],
        ["predict", "x.jpg", "--config", CONFIG, "--conf", "0.7", "--out", "o", ROI, "0.3"],
    ],
)
def test_predict_override_wins_over_conf_in_every_form(argv):
    args = _parse(argv)
    cfg = setup_cfg(args)
    assert args.inputs == ["x.jpg"]
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == pytest.approx(0.3)  # the user's override
    assert cfg.MODEL.RETINANET.SCORE_THRESH_TEST == pytest.approx(0.7)  # the flag
    assert cfg.MODEL.WEIGHTS == model_zoo.get_checkpoint_url(CONFIG)


def test_conf_default_still_applies_without_an_override():
    cfg = setup_cfg(_parse(["predict", "x.jpg", "--config", CONFIG, "--out", "o"]))
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == pytest.approx(0.5)


def test_train_and_eval_take_both_forms():
    pairs = ["SOLVER.BASE_LR", "0.1", "SEED", "-1"]
    for command in (["train", "--config", "c.yaml"], ["eval", "--config", "c.yaml"]):
        trailing = collect_overrides(_parse([*command, *pairs]))
        with_opts = collect_overrides(_parse([*command, "--opts", *pairs]))
        assert trailing == with_opts == pairs


def test_unknown_options_after_overrides_are_usage_errors():
    with pytest.raises(SystemExit) as e:
        _parse(["predict", "x.jpg", "--config", CONFIG, "--out", "o", "--bogus", "1"])
    assert e.value.code == 2


def test_a_zoo_config_file_path_loads_the_zoo_weights(tmp_path, caplog):
    zoo_file = model_zoo.get_config_file(CONFIG)
    args = _parse(["predict", "x.jpg", "--config", zoo_file, "--out", "o"])
    assert setup_cfg(args).MODEL.WEIGHTS == model_zoo.get_checkpoint_url(CONFIG)
    # A copy in a checkout-like tree is recognised by its text.
    copy = tmp_path / "configs" / CONFIG
    copy.parent.mkdir(parents=True)
    shutil.copy(zoo_file, copy)
    shutil.copy(model_zoo.get_config_file("Base-RCNN-FPN.yaml"), tmp_path / "configs")
    args = _parse(["predict", "x.jpg", "--config", str(copy), "--out", "o"])
    assert setup_cfg(args).MODEL.WEIGHTS == model_zoo.get_checkpoint_url(CONFIG)
    # An edited config keeps its own (ImageNet) weights, with a warning saying so.
    copy.write_text(copy.read_text() + "\nSOLVER:\n  BASE_LR: 0.001\n")
    with caplog.at_level(logging.WARNING, logger="masktron"):
        cfg = setup_cfg(_parse(["predict", "x.jpg", "--config", str(copy), "--out", "o"]))
    assert "ImageNetPretrained" in cfg.MODEL.WEIGHTS
    assert "ImageNet backbone only" in caplog.text


def test_no_labels_draws_masks_without_text(tmp_path):
    from masktron.cli.predict import _write_outputs
    from masktron.data import MetadataCatalog
    from masktron.structures import Boxes, Instances

    masks = torch.zeros(1, 60, 90, dtype=torch.bool)
    masks[0, 10:50, 10:80] = True
    inst = Instances((60, 90), pred_boxes=Boxes(torch.tensor([[10.0, 10, 80, 50]])),
                     scores=torch.tensor([0.9]), pred_classes=torch.tensor([0]),
                     pred_masks=masks)  # fmt: skip
    meta = MetadataCatalog.get("coco_2017_val")
    rgb = np.full((60, 90, 3), 128, np.uint8)
    for name, labels in (("l.png", True), ("n.png", False)):
        _write_outputs({"instances": inst}, rgb, meta, str(tmp_path), name, 1, [], [], labels)
    labelled = np.asarray(Image.open(tmp_path / "l.png")).astype(int)
    plain = np.asarray(Image.open(tmp_path / "n.png")).astype(int)
    assert not np.array_equal(plain, rgb)  # the mask is drawn
    assert (np.abs(labelled - plain).sum(-1) > 60).sum() > 20  # the text ("person 90%") is not

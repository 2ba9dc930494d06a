"""Values that cannot work are refused when the config is frozen or a run is built from it."""

import math

import numpy as np
import pytest

from masktron.config import ConfigError, get_cfg
from masktron.config.rules import RULES, config_problems


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("SOLVER.IMS_PER_BATCH", 0, "an integer >= 1"),
        ("SOLVER.IMS_PER_BATCH", -4, "an integer >= 1"),
        ("SOLVER.MAX_ITER", -1, "an integer >= 0"),
        ("SOLVER.BASE_LR", math.nan, "a finite number >= 0"),
        ("SOLVER.BASE_LR", math.inf, "a finite number >= 0"),
        ("MODEL.DEVICE", "bogus", "a torch device"),
        ("MODEL.ROI_HEADS.NUM_CLASSES", 0, "an integer >= 1"),
        ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 2.0, "a number in [0, 1]"),
        ("MODEL.RETINANET.SCORE_THRESH_TEST", -0.1, "a number in [0, 1]"),
        ("INPUT.MIN_SIZE_TRAIN", [0], "a non-empty list of integers >= 1"),
    ],
)
def test_bad_value_is_refused_at_freeze_with_key_value_and_range(key, value, allowed):
    cfg = get_cfg()
    cfg.merge_from_list([key, str(value)])
    with pytest.raises(ConfigError) as err:
        cfg.freeze()
    line = next(ln for ln in str(err.value).splitlines() if key in ln)
    assert repr(value) in line and allowed in line
    assert not cfg.is_frozen()


def test_every_problem_is_reported_at_once():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.IMS_PER_BATCH", "0", "SOLVER.MAX_ITER", "-5", "MODEL.DEVICE", "x"])
    assert len(config_problems(cfg)) == 3
    with pytest.raises(ConfigError, match="bad config values") as err:
        cfg.freeze()
    assert len(str(err.value).splitlines()) == 4


def test_defaults_and_zoo_configs_pass():
    from masktron import model_zoo

    cfg = get_cfg()
    assert config_problems(cfg) == []
    for name in ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
                 "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
                 "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml"):  # fmt: skip
        assert config_problems(model_zoo.get_config(name)) == [], name
    for device in ("cpu", "cuda", "cuda:1", "mps"):
        cfg.MODEL.DEVICE = device
        assert config_problems(cfg) == []


def test_every_rule_names_an_existing_key():
    cfg = get_cfg()
    for rule in RULES:
        node = cfg
        for part in rule.key.split("."):
            assert part in node, rule.key
            node = node[part]


def test_default_predictor_refuses_bad_values_and_empty_images():
    from masktron.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 2.0
    with pytest.raises(ConfigError, match="SCORE_THRESH_TEST = 2.0"):
        DefaultPredictor(cfg)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
    predictor = DefaultPredictor(cfg)
    with pytest.raises(ValueError, match=r"empty image \(shape \(0, 0, 3\)\)"):
        predictor(np.zeros((0, 0, 3), np.uint8))


def test_batch_larger_than_the_dataset_is_refused_before_loading_anything():
    from masktron.data.build import build_detection_train_loader

    dicts = [{"file_name": f"{i}.jpg", "image_id": i, "height": 4, "width": 4} for i in range(4)]
    with pytest.raises(ValueError, match=r"IMS_PER_BATCH \(100000\).*only 4; use at most 4"):
        build_detection_train_loader(dataset=dicts, mapper=lambda d: d, total_batch_size=100000)


def test_batch_that_cannot_fit_in_memory_is_refused_with_the_estimate():
    from masktron.config.rules import batch_memory_problem, physical_memory

    cfg = get_cfg()  # 800 x 1333 training images at most
    cfg.MODEL.DEVICE = "cpu"
    per_image = 800 * 1333 * 3 * 5  # uint8 as loaded + float32 batch on the CPU
    ram = 20 * per_image + 7
    assert batch_memory_problem(cfg, memory=ram) is None  # the default 16 fits
    cfg.SOLVER.IMS_PER_BATCH = 100000
    problem = batch_memory_problem(cfg, memory=ram)
    assert problem is not None and problem.startswith(
        "SOLVER.IMS_PER_BATCH = 100000: 100000 image(s) per batch per process of up to "
        "800 x 1333 pixels need at least 1,489.7 GiB for the input batch alone"
    )
    assert "of at most 20 image(s) per batch would fit" in problem
    cfg.SOLVER.IMS_PER_BATCH = 64  # 16 per process on 4 machines of one process each
    assert batch_memory_problem(cfg, world_size=4, memory=ram) is None
    assert "of at most 20 image(s) per batch would fit" in batch_memory_problem(
        cfg, world_size=4, local_size=4, memory=ram
    )
    cfg.MODEL.DEVICE = "cuda"  # the float batch is in the GPU's memory: 1 byte per value
    assert batch_memory_problem(cfg, memory=ram) is None
    cfg.INPUT.MAX_SIZE_TRAIN = 10**6  # the short side is MIN_SIZE_TRAIN's largest
    assert "of up to 800 x 1000000 pixels" in batch_memory_problem(cfg, memory=ram)
    assert physical_memory() is None or physical_memory() > 2**26


def test_trainer_refuses_an_impossible_batch_before_building_anything(monkeypatch):
    from masktron.engine import DefaultTrainer

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.SOLVER.IMS_PER_BATCH = 100000  # ~1.5 TiB of input: refused on any machine
    monkeypatch.setattr(DefaultTrainer, "build_model", None)  # would fail if reached
    with pytest.raises(ConfigError, match=r"IMS_PER_BATCH = 100000: .* more than its .* of RAM"):
        DefaultTrainer(cfg)

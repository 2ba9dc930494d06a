"""Detectron2's test-time augmentation (`GeneralizedRCNNWithTTA`, TEST.AUG.*) on a tiny Mask
R-CNN: one un-flipped version at the test size reproduces the plain model; with flips and
several sizes the merged detections are in original pixels with averaged masks."""

import sys
from pathlib import Path

import pytest
import torch
from rcnn_tiny import tiny_cfg

from masktron.modeling import GeneralizedRCNNWithTTA
from masktron.models.build import build_model
from masktron.models.tta import DatasetMapperTTA

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"


@pytest.fixture(scope="module")
def model_and_cfg():
    torch.manual_seed(0)
    cfg = tiny_cfg(CONFIG, depth=18)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 64, 100
    model = build_model(cfg).eval()
    # Flat class scores: many detections, so merging has something to do.
    torch.nn.init.zeros_(model.roi_heads.box_predictor.cls_score.weight)
    return model, cfg


def _input():
    g = torch.Generator().manual_seed(1)
    image = (torch.rand(3, 48, 64, generator=g) * 255).to(torch.uint8)
    return {"image": image, "height": 48, "width": 64}


def test_mapper_makes_each_size_and_its_flip():
    mapper = DatasetMapperTTA(min_sizes=[32, 96], max_size=1000, flip=True)
    out = mapper(_input())
    assert [tuple(d["image"].shape[1:]) for d in out] == [(32, 43), (32, 43), (96, 128), (96, 128)]
    flips = [
        any(type(t).__name__ == "HFlipTransform" for t in d["transforms"].transforms) for d in out
    ]
    assert flips == [False, True, False, True]


def test_single_unflipped_version_equals_the_plain_model(model_and_cfg):
    model, cfg = model_and_cfg
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = [cfg.INPUT.MIN_SIZE_TEST]
    cfg.TEST.AUG.MAX_SIZE = cfg.INPUT.MAX_SIZE_TEST
    cfg.TEST.AUG.FLIP = False
    tta = GeneralizedRCNNWithTTA(cfg, model)
    (version,) = tta.tta_mapper(_input())
    with torch.no_grad():
        plain = model([{**version, "height": 48, "width": 64}])[0]["instances"]
        merged = tta([_input()])[0]["instances"]
    assert len(plain) > 0 and merged.image_size == (48, 64)
    order = torch.argsort(plain.scores, descending=True, stable=True)
    torch.testing.assert_close(merged.pred_boxes.tensor, plain.pred_boxes.tensor[order])
    torch.testing.assert_close(merged.scores, plain.scores[order])
    assert torch.equal(merged.pred_masks, plain.pred_masks[order])


def test_flips_and_sizes_merge_into_original_pixels(model_and_cfg):
    model, cfg = model_and_cfg
    cfg = cfg.clone()
    cfg.TEST.AUG.MIN_SIZES = [40, 64]
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    with torch.no_grad():
        inst = GeneralizedRCNNWithTTA(cfg, model, batch_size=2)([_input()])[0]["instances"]
    assert 0 < len(inst) <= 20 and inst.image_size == (48, 64)
    assert inst.pred_masks.shape == (len(inst), 48, 64) and inst.pred_masks.dtype == torch.bool
    boxes = inst.pred_boxes.tensor
    assert (boxes >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all()
    assert model.roi_heads.mask_on  # switched back on after the box pass


def test_merge_keeps_the_best_box_per_class():
    cfg = tiny_cfg(CONFIG)
    tta = GeneralizedRCNNWithTTA.__new__(GeneralizedRCNNWithTTA)
    tta.cfg = cfg
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.5, 0, 10, 10], [0.5, 0, 10, 10], [20, 20, 30, 30]])
    merged = tta._merge_detections(
        boxes, torch.tensor([0.6, 0.9, 0.3, 0.5]), torch.tensor([1, 1, 2, 1]), (40, 40)
    )
    # the two overlapping class-1 boxes merge into the better one; another class is kept
    assert merged.scores.tolist() == pytest.approx([0.9, 0.5, 0.3])
    assert merged.pred_classes.tolist() == [1, 1, 2]


def test_keypoint_models_are_refused():
    cfg = tiny_cfg("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml")
    with pytest.raises(ValueError, match="keypoints"):
        GeneralizedRCNNWithTTA(cfg, build_model(cfg))


def test_tta_evaluation_as_train_net_does(tmp_path, shared_dir):
    """`TEST.AUG.ENABLED`: `masktron train` (tools/train_net.py) also reports `<task>_TTA`."""
    from masktron.cli.train import test_with_tta
    from masktron.data import DatasetCatalog, register_via_instances

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from engine_helpers import small_balloon_set  # two balloon photos, 64 px short side

    shared_dir  # noqa: B018 (skips the test without the shared data)
    json_file = small_balloon_set(tmp_path / "data", short_side=64)
    register_via_instances(
        "tta_balloons", {"thing_classes": ["balloon"]}, str(json_file), str(json_file.parent)
    )
    try:
        cfg = tiny_cfg(CONFIG, depth=18)
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
        cfg.DATASETS.TEST = ("tta_balloons",)
        cfg.OUTPUT_DIR = str(tmp_path / "out")
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 48, 64
        cfg.TEST.AUG.ENABLED = True
        cfg.TEST.AUG.MIN_SIZES = [32, 48]
        cfg.DATALOADER.NUM_WORKERS = 0
        torch.manual_seed(0)
        results = test_with_tta(cfg, build_model(cfg))
    finally:
        DatasetCatalog.remove("tta_balloons")
    assert set(results) == {"bbox_TTA", "segm_TTA"} and "AP" in results["segm_TTA"]
    assert (tmp_path / "out" / "inference_TTA").is_dir()

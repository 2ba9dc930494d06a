"""Fast R-CNN (PROPOSAL_GENERATOR.NAME = PrecomputedProposals): no RPN, the RoI heads run on the
proposals that come with the inputs; trained and evaluated on the COCO sample from a file."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch
from proposal_helpers import load_raw, make_proposals, write_proposal_file
from test_rcnn_models import tiny_cfg

from masktron.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
    register_coco_instances,
)
from masktron.models.build import build_model
from masktron.structures import Boxes, Instances

REPO = Path(__file__).resolve().parents[2]
COCO = Path(os.environ.get("MASKTRON_SHARED", REPO.parent / "shared")) / "data" / "coco_sample"


def tiny_fast_rcnn_cfg():
    """The zoo's fast_rcnn_R_50_FPN_1x at the widths of `tiny_cfg`, on 96 px images."""
    cfg = tiny_cfg("COCO-Detection/fast_rcnn_R_50_FPN_1x.yaml")
    assert cfg.MODEL.PROPOSAL_GENERATOR.NAME == "PrecomputedProposals" and cfg.MODEL.LOAD_PROPOSALS
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN = 30
    cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST = 20
    cfg.INPUT.MIN_SIZE_TRAIN = [96]
    cfg.INPUT.MAX_SIZE_TRAIN = 160
    cfg.INPUT.MIN_SIZE_TEST = 96
    cfg.INPUT.MAX_SIZE_TEST = 160
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SEED = 0
    return cfg


def test_builds_without_a_proposal_generator():
    cfg = tiny_fast_rcnn_cfg()
    model = build_model(cfg)
    assert model.proposal_generator is None
    assert not any(n.startswith("proposal_generator.") for n in model.state_dict())
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    with pytest.raises(ValueError, match="'RPN', 'PrecomputedProposals'"):
        build_model(cfg)
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    cfg.MODEL.KEYPOINT_ON = True  # a keypoint head runs on precomputed proposals too
    assert build_model(cfg).roi_heads.keypoint_on


def _zero_box_predictor(model) -> None:
    """Flat class scores and zero box deltas: every proposal becomes a detection as it is."""
    for layer in (model.roi_heads.box_predictor.cls_score, model.roi_heads.box_predictor.bbox_pred):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)


def test_inference_runs_on_the_given_proposals():
    torch.manual_seed(0)
    cfg = tiny_fast_rcnn_cfg()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    _zero_box_predictor(model)
    box = [10.0, 20.0, 60.0, 70.0]
    one = Instances(
        (96, 128), proposal_boxes=Boxes(torch.tensor([box])), objectness_logits=torch.ones(1)
    )
    none = Instances(
        (96, 128), proposal_boxes=Boxes(torch.zeros(0, 4)), objectness_logits=torch.zeros(0)
    )
    image = torch.rand(3, 96, 128) * 255
    with torch.no_grad():
        out = model(
            [
                {"image": image, "proposals": one, "height": 192, "width": 256},
                {"image": image, "proposals": none},
            ]
        )
    found, empty = out[0]["instances"], out[1]["instances"]
    assert len(found) == cfg.MODEL.ROI_HEADS.NUM_CLASSES and len(empty) == 0
    expected = torch.tensor([[2 * v for v in box]]).expand(len(found), 4)
    torch.testing.assert_close(found.pred_boxes.tensor, expected)


def test_inputs_without_proposals_give_a_clear_error():
    model = build_model(tiny_fast_rcnn_cfg()).eval()
    with pytest.raises(ValueError, match=r"precomputed proposals.*PROPOSAL_FILES_TEST"):
        model([{"image": torch.rand(3, 64, 64) * 255}])
    stale = Instances(
        (128, 128), proposal_boxes=Boxes(torch.zeros(1, 4)), objectness_logits=torch.zeros(1)
    )
    with pytest.raises(ValueError, match="transform them with the image"):
        model([{"image": torch.rand(3, 64, 64) * 255, "proposals": stale}])
    model.train()
    gt = Instances(
        (64, 64), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.int64)
    )
    with pytest.raises(ValueError, match="PROPOSAL_FILES_TRAIN"):
        model([{"image": torch.rand(3, 64, 64) * 255, "instances": gt}])


@pytest.fixture
def coco_sample_with_proposals(tmp_path):
    """COCO sample train/val registered under fresh names, and a proposal file for each."""
    if not COCO.is_dir():
        pytest.skip(f"shared data not found at {COCO} (set MASKTRON_SHARED)")
    names = {}
    for split in ("train2017", "val2017"):
        json_file = COCO / "annotations" / f"instances_{split}.json"
        name = f"test_fast_rcnn_coco_{split}_{os.getpid()}"
        register_coco_instances(name, {}, json_file, COCO / "images" / split)
        path = write_proposal_file(tmp_path / f"{split}.pkl", make_proposals(load_raw(json_file)))
        names[split] = (name, str(path))
    yield names
    for name, _ in names.values():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_trains_and_evaluates_from_proposal_files(coco_sample_with_proposals):
    torch.manual_seed(0)
    (train, train_file), (val, val_file) = coco_sample_with_proposals.values()
    cfg = tiny_fast_rcnn_cfg()
    cfg.DATASETS.TRAIN, cfg.DATASETS.PROPOSAL_FILES_TRAIN = [train], [train_file]
    cfg.DATASETS.TEST, cfg.DATASETS.PROPOSAL_FILES_TEST = [val], [val_file]
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for batch in itertools.islice(build_detection_train_loader(cfg), 3):
        losses = model(batch)
        assert set(losses) == {"loss_cls", "loss_box_reg"}  # no RPN, no loss_rpn_*
        assert all(torch.isfinite(v) for v in losses.values()), losses
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    model.eval()
    loader = build_detection_test_loader(cfg, val)
    with torch.no_grad():
        outputs = [(x, model(x)[0]["instances"]) for x in itertools.islice(loader, 3)]
    for (inputs,), instances in outputs:
        assert instances.image_size == (inputs["height"], inputs["width"])  # original pixels
        assert 0 < len(instances) <= cfg.TEST.DETECTIONS_PER_IMAGE
        assert torch.isfinite(instances.pred_boxes.tensor).all()

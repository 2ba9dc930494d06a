"""Detector output -> SAM masks in one call (`refine_with_sam`), on the fixture weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_util_sam import fixture_predictor, load_rgb, tiny_sam

from masktron.sam import refine_with_sam
from masktron.structures import Boxes, Instances

BOXES = [[40.0, 60.0, 300.0, 400.0], [0.0, 0.0, 512.0, 512.0], [200.5, 10.0, 250.0, 90.0]]


@pytest.fixture(scope="module")
def astronaut():
    return load_rgb("astronaut")


def _detections(n=3):
    return Instances(
        (512, 512),
        pred_boxes=Boxes(torch.tensor(BOXES[:n])),
        scores=torch.tensor([0.9, 0.8, 0.7][:n]),
        pred_classes=torch.tensor([0, 5, 2][:n]),
        pred_masks=torch.zeros(n, 512, 512, dtype=torch.bool),
    )


def test_boxes_become_sam_masks(astronaut):
    predictor = fixture_predictor()
    dets = _detections()
    out = refine_with_sam(predictor, dets, astronaut)
    assert isinstance(out, Instances) and len(out) == 3 and out.image_size == (512, 512)
    assert out.pred_masks.shape == (3, 512, 512) and out.pred_masks.dtype == torch.bool
    assert out.sam_scores.shape == (3,)
    torch.testing.assert_close(out.scores, dets.scores)
    torch.testing.assert_close(out.pred_classes, dets.pred_classes)
    assert not dets.pred_masks.any(), "the input is not modified"
    for i, box in enumerate(BOXES):
        masks, ious, _ = predictor.predict(box=np.array(box), multimask_output=False)
        assert (masks[0] != out.pred_masks[i].numpy()).mean() < 1e-4
        assert out.sam_scores[i].item() == pytest.approx(ious[0], abs=1e-4)
    # a detector's output dict, the image already set, and 3 masks per box with the best kept
    best = refine_with_sam(predictor, {"instances": dets}, multimask_output=True)
    for i, box in enumerate(BOXES):
        masks, ious, _ = predictor.predict(box=np.array(box), multimask_output=True)
        assert best.sam_scores[i].item() == pytest.approx(ious.max(), abs=1e-4)
        assert (masks[ious.argmax()] != best.pred_masks[i].numpy()).mean() < 1e-4


def test_bgr_image_and_boxes_past_the_border(astronaut):
    dets = _detections(1)
    dets.pred_boxes = Boxes(torch.tensor([[-0.001, 10.0, 512.0004, 300.0]]))
    out = refine_with_sam(
        fixture_predictor(), dets, np.ascontiguousarray(astronaut[..., ::-1]), image_format="BGR"
    )
    assert out.pred_masks.shape == (1, 512, 512)


def test_no_detections(astronaut):
    empty = Instances((512, 512), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0))
    out = refine_with_sam(fixture_predictor(), empty, astronaut)
    assert len(out) == 0 and out.pred_masks.shape == (0, 512, 512)


def test_errors():
    predictor = fixture_predictor()
    photo = np.zeros((40, 50, 3), np.uint8)
    sam = tiny_sam()
    with pytest.raises(ValueError, match=r"image of \(height, width\) \(512, 512\).*\(40, 50\)"):
        refine_with_sam(sam, _detections(), photo)
    with pytest.raises(ValueError, match="no 'pred_boxes'"):
        refine_with_sam(predictor, Instances((40, 50), scores=torch.zeros(2)), photo)
    with pytest.raises(ValueError, match="'instances'"):
        refine_with_sam(predictor, {"sem_seg": torch.zeros(1)}, photo)
    with pytest.raises(ValueError, match="Instances"):
        refine_with_sam(predictor, [1, 2], photo)
    from masktron.predictors.sam_predictor import SamPredictor

    with pytest.raises(ValueError, match="pass the image"):
        refine_with_sam(SamPredictor(sam), _detections())


@pytest.mark.slow
def test_after_a_masktron_detector(mask_rcnn_zoo_pkl, astronaut):
    from masktron import model_zoo
    from masktron.config import get_cfg
    from masktron.engine import DefaultPredictor

    cfg = get_cfg()
    cfg.merge_from_file(
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    )
    cfg.MODEL.WEIGHTS = str(mask_rcnn_zoo_pkl)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    bgr = np.ascontiguousarray(astronaut[..., ::-1])
    outputs = DefaultPredictor(cfg)(bgr)
    assert len(outputs["instances"]) > 0
    refined = refine_with_sam(fixture_predictor(), outputs, bgr, image_format="BGR")
    assert refined.pred_masks.shape == (len(outputs["instances"]), 512, 512)
    torch.testing.assert_close(refined.pred_boxes.tensor, outputs["instances"].pred_boxes.tensor)
    assert not torch.equal(refined.pred_masks, outputs["instances"].pred_masks)

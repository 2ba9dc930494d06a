"""Parity with Detectron2's Cascade Mask R-CNN (Misc/cascade_mask_rcnn_R_50_FPN_3x: three
averaged box stages, masks on the last stage's boxes) and Keypoint R-CNN
(COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x: `pred_keypoints` (N, 17, 3)): fixture weights in a
model-zoo .pkl, loaded through cfg.MODEL.WEIGHTS and DefaultPredictor, on both photos."""

import numpy as np
import pytest
from parity_utils import compare_detections, read_rgb, zoo_predictor

CASCADE = "cascade_mask_rcnn_R_50_FPN_3x"
KEYPOINT = "keypoint_rcnn_R_50_FPN_3x"


def _run(predictor, shared_dir, name, stem):
    """(expected arrays, our instances, comparison) for one fixture image."""
    expected = np.load(shared_dir / "fixtures" / f"{name}.s0.expected.npz")
    rgb = read_rgb(shared_dir, stem)
    inst = predictor(rgb[:, :, ::-1])["instances"].to("cpu")
    assert inst.image_size == rgb.shape[:2]
    masks = inst.pred_masks.numpy() if inst.has("pred_masks") else None
    boxes, scores = inst.pred_boxes.tensor.numpy(), inst.scores.numpy()
    result = compare_detections(expected, stem, boxes, scores, inst.pred_classes.numpy(), masks)
    assert result["agree"] >= 0.90, result["agree"]
    return expected, inst, result


@pytest.fixture(scope="module")
def cascade_predictor(zoo_pkl):
    return zoo_predictor(zoo_pkl(CASCADE), f"Misc/{CASCADE}.yaml")


@pytest.fixture(scope="module")
def keypoint_predictor(zoo_pkl):
    return zoo_predictor(zoo_pkl(KEYPOINT), f"COCO-Keypoints/{KEYPOINT}.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["astronaut", "coffee"])
def test_cascade_mask_rcnn_matches_detectron2(cascade_predictor, shared_dir, stem):
    _, _, result = _run(cascade_predictor, shared_dir, CASCADE, stem)
    # The cascade's masks are more sensitive than Mask R-CNN's (see the fixtures' README).
    assert result["mask_iou"] >= 0.95, result["mask_iou"]


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["astronaut", "coffee"])
def test_keypoint_rcnn_matches_detectron2(keypoint_predictor, shared_dir, stem):
    expected, inst, result = _run(keypoint_predictor, shared_dir, KEYPOINT, stem)
    keypoints = inst.pred_keypoints.numpy()
    assert keypoints.shape == (len(inst), 17, 3)
    ref, pairs = expected[f"{stem}/keypoints"], result["pairs"]
    # A keypoint is the arg-max of a 56x56 map: single points may jump, so judge the mean.
    dist = np.mean([np.linalg.norm(ref[i, :, :2] - keypoints[j, :, :2], axis=1) for i, j in pairs])
    assert dist <= 0.5, dist
    score_diff = np.median([np.abs(ref[i, :, 2] - keypoints[j, :, 2]).max() for i, j in pairs])
    assert score_diff <= 5e-3, score_diff

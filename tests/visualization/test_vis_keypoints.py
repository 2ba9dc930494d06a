"""Keypoint predictions drawn as Detectron2 does: dots over the score threshold, the COCO
skeleton's limbs in their rule colours, and the nose -> mid-shoulder -> mid-hip spine."""

import numpy as np
import torch

from masktron.data import MetadataCatalog
from masktron.structures import Boxes, Instances, Keypoints
from masktron.visualization import Visualizer

# One person on a grey 200 x 200 canvas (x, y, score); the right knee is under the threshold.
POINTS = {
    "nose": (100, 30),
    "left_shoulder": (70, 70),
    "right_shoulder": (130, 70),
    "left_elbow": (60, 110),
    "left_hip": (80, 130),
    "right_hip": (120, 130),
    "right_knee": (130, 170),
}


def _person(names):
    kps = np.zeros((17, 3), np.float32)
    for name, (x, y) in POINTS.items():
        kps[names.index(name)] = (x, y, 0.01 if name == "right_knee" else 0.9)
    return kps


def _draw(as_structure):
    meta = MetadataCatalog.get("keypoints_coco_2017_val")
    kps = torch.from_numpy(_person(meta.keypoint_names))[None]
    inst = Instances(
        (200, 200),
        pred_boxes=Boxes(torch.tensor([[50.0, 20.0, 150.0, 190.0]])),
        scores=torch.tensor([0.9]),
        pred_classes=torch.tensor([0]),
        pred_keypoints=Keypoints(kps) if as_structure else kps,
    )
    canvas = np.full((200, 200, 3), 128, np.uint8)
    return Visualizer(canvas, meta).draw_instance_predictions(inst).get_image(), meta


def _near(img, xy, color, tol=40):
    x, y = xy
    patch = img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).astype(int)
    return (np.abs(patch - np.asarray(color)).max(axis=1) <= tol).any()


def test_limbs_spine_and_dots_are_drawn():
    img, meta = _draw(as_structure=False)
    rules = {(a, b): c for a, b, c in meta.keypoint_connection_rules}
    # a limb's midpoint carries its rule's colour
    assert _near(img, (65, 90), rules[("left_shoulder", "left_elbow")])
    assert _near(img, (85, 70), rules[("left_shoulder", "right_shoulder")])
    assert _near(img, (90, 130), rules[("left_hip", "right_hip")])
    # the spine: nose -> mid-shoulder (100, 70), mid-shoulder -> mid-hip (100, 130), in red
    assert _near(img, (100, 50), (255, 0, 0)) and _near(img, (100, 100), (255, 0, 0))
    # a keypoint under the 0.05 threshold is neither dotted nor joined
    assert not _near(img, (130, 170), (255, 0, 0)) and not _near(
        img, (125, 150), rules[("right_hip", "right_knee")]
    )


def test_keypoints_structure_draws_the_same():
    a, _ = _draw(as_structure=False)
    b, _ = _draw(as_structure=True)
    assert np.array_equal(a, b)

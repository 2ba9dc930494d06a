"""Parity with Detectron2: Panoptic FPN fixture weights in a real model-zoo .pkl, through
cfg.MODEL.WEIGHTS and DefaultPredictor, must give Detectron2's instances, semantic argmax and
panoptic segments."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from parity_utils import read_rgb, zoo_predictor
from scipy.optimize import linear_sum_assignment
from test_retinanet_parity import STEMS, detection_agreement

NAME = "panoptic_fpn_R_50_3x"


def segment_agreement(reference: np.ndarray, ours: np.ndarray) -> tuple[float, dict[int, int]]:
    """Fraction of pixels in the same segment after a one-to-one matching of segment ids that
    maximises the shared pixels; and that matching, reference id -> our id."""
    ref_ids, ref_index = np.unique(reference, return_inverse=True)
    our_ids, our_index = np.unique(ours, return_inverse=True)
    shared = np.zeros((len(ref_ids), len(our_ids)), dtype=np.int64)
    np.add.at(shared, (ref_index.ravel(), our_index.ravel()), 1)
    rows, cols = linear_sum_assignment(shared, maximize=True)
    matching = {int(ref_ids[r]): int(our_ids[c]) for r, c in zip(rows, cols)}
    return shared[rows, cols].sum() / reference.size, matching


def test_segment_agreement_is_invariant_to_renumbering_and_counts_moved_pixels():
    ref = np.array([[0, 1, 1, 2], [0, 1, 2, 2]])
    assert segment_agreement(ref, np.where(ref == 1, 7, np.where(ref == 2, 3, 0)))[0] == 1.0
    moved = ref.copy()
    moved[0, 2] = 2
    agree, matching = segment_agreement(ref, moved)
    assert agree == 7 / 8 and matching == {0: 0, 1: 1, 2: 2}


@pytest.fixture(scope="module")
def predictor(zoo_pkl):
    return zoo_predictor(zoo_pkl(NAME), f"COCO-PanopticSegmentation/{NAME}.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_panoptic_fpn_matches_detectron2(predictor, shared_dir, stem):
    expected = np.load(shared_dir / "fixtures" / f"{NAME}.s0.expected.npz")
    rgb = read_rgb(shared_dir, stem)
    out = predictor(rgb[:, :, ::-1])
    height, width = rgb.shape[:2]

    instances = out["instances"].to("cpu")
    agree, pairs = detection_agreement(expected, stem, instances)
    assert agree >= 0.90, agree
    shape = expected[f"{stem}/masks_shape"]
    ref_masks = np.unpackbits(expected[f"{stem}/masks_packed"], axis=-1)[..., : shape[2]]
    masks = instances.pred_masks.numpy()
    ious = [
        (ref_masks[i] & masks[j]).sum() / max((ref_masks[i] | masks[j]).sum(), 1) for i, j in pairs
    ]
    assert np.mean(ious) >= 0.97

    sem_seg = out["sem_seg"].cpu()
    assert sem_seg.shape == (54, height, width)
    sem_agree = (sem_seg.argmax(dim=0).numpy() == expected[f"{stem}/sem_seg_argmax"]).mean()
    assert sem_agree >= 0.98, sem_agree

    panoptic, segments = out["panoptic_seg"]
    panoptic = panoptic.cpu()
    assert panoptic.shape == (height, width) and str(panoptic.dtype) == "torch.int32"
    pixel_agree, matching = segment_agreement(expected[f"{stem}/panoptic"], panoptic.numpy())
    assert pixel_agree >= 0.98, pixel_agree
    ours = {s["id"]: s for s in segments}
    for ref in ast.literal_eval(str(expected[f"{stem}/panoptic_info"])):
        mine = ours[matching[ref["id"]]]
        assert (mine["isthing"], mine["category_id"]) == (ref["isthing"], ref["category_id"])
    assert sorted(ours) == list(range(1, len(segments) + 1))

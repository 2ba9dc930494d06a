"""Box coder, anchors, matcher, sampler and pooler level assignment on hand-made inputs."""

import math

import pytest
import torch

from masktron.models.anchors import DefaultAnchorGenerator, generate_cell_anchors
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher, subsample_labels
from masktron.models.poolers import ROIPooler, assign_boxes_to_levels
from masktron.structures import Boxes


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_box_coder_round_trip(weights):
    g = torch.Generator().manual_seed(0)
    src = torch.rand(50, 2, generator=g) * 100
    src = torch.cat([src, src + 1 + torch.rand(50, 2, generator=g) * 50], dim=1)
    tgt = torch.rand(50, 2, generator=g) * 100
    tgt = torch.cat([tgt, tgt + 1 + torch.rand(50, 2, generator=g) * 50], dim=1)
    coder = Box2BoxTransform(weights)
    deltas = coder.get_deltas(src, tgt)
    assert torch.allclose(coder.apply_deltas(deltas, src), tgt, atol=1e-3)


def test_box_coder_hand_values_and_scale_clamp():
    coder = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    tgt = torch.tensor([[5.0, 0.0, 15.0, 40.0]])  # centre +5 in x, +10 in y; height x2
    deltas = coder.get_deltas(src, tgt)
    assert torch.allclose(deltas, torch.tensor([[10 * 5 / 10, 10 * 10 / 20, 0.0, 5 * math.log(2)]]))
    huge = coder.apply_deltas(torch.tensor([[0.0, 0.0, 1000.0, 1000.0]]), src)
    width = huge[0, 2] - huge[0, 0]
    assert torch.isclose(width, torch.tensor(10 * 1000 / 16))  # dw clamped at log(1000/16)


def test_cell_anchors_keep_area_and_ratio_size_major():
    cells = generate_cell_anchors([32, 64], [0.5, 1.0, 2.0])
    assert cells.shape == (6, 4)
    w, h = cells[:, 2] - cells[:, 0], cells[:, 3] - cells[:, 1]
    assert torch.allclose(w * h, torch.tensor([32.0**2] * 3 + [64.0**2] * 3))
    assert torch.allclose(h / w, torch.tensor([0.5, 1.0, 2.0] * 2))
    assert torch.allclose(cells[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))


def test_grid_anchors_order_rows_then_columns_then_cell_anchors():
    gen = DefaultAnchorGenerator(sizes=[[8]], aspect_ratios=[[1.0, 2.0]], strides=[4], offset=0.0)
    (anchors,) = gen([torch.zeros(1, 1, 2, 3)])
    assert len(anchors) == 2 * 3 * 2
    centres = anchors.get_centers()
    # location (row 0, col 1) holds anchors 2 and 3, centred at x = 4, y = 0
    assert torch.allclose(centres[2], torch.tensor([4.0, 0.0]))
    assert torch.allclose(centres[6], torch.tensor([0.0, 4.0]))  # row 1, col 0
    half = DefaultAnchorGenerator(sizes=[[8]], aspect_ratios=[[1.0]], strides=[4], offset=0.5)
    assert torch.allclose(
        half([torch.zeros(1, 1, 1, 1)])[0].get_centers(), torch.tensor([[2.0, 2.0]])
    )


def test_anchor_generator_broadcasts_one_list_to_all_levels_and_checks_counts():
    gen = DefaultAnchorGenerator(
        sizes=[[32], [64]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[4, 8]
    )
    assert gen.num_cell_anchors == [3, 3]
    with pytest.raises(ValueError, match="3 lists for 2"):
        DefaultAnchorGenerator(sizes=[[1], [2], [3]], aspect_ratios=[[1.0]], strides=[4, 8])


def test_matcher_labels_by_thresholds_and_low_quality_matches():
    iou = torch.tensor([[0.1, 0.35, 0.8, 0.2], [0.25, 0.6, 0.0, 0.25]])
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=False)
    matches, labels = matcher(iou)
    assert matches.tolist() == [1, 1, 0, 1]
    assert labels.tolist() == [0, -1, 1, 0]
    low = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    _, labels = low(iou)
    assert labels.tolist() == [0, 1, 1, 0]  # gt 1's best (0.6) becomes positive
    empty_matches, empty_labels = matcher(torch.zeros(0, 3))
    assert empty_labels.tolist() == [0, 0, 0]


def test_subsample_labels_respects_fraction_and_ignores():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    torch.manual_seed(0)
    pos, neg = subsample_labels(labels, 16, 0.25, bg_label=0)
    assert len(pos) == 4 and len(neg) == 12
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()


def test_pooler_levels_follow_fpn_equation():
    sizes = torch.tensor([10.0, 112.0, 224.0, 448.0, 2000.0])
    boxes = Boxes(torch.stack([torch.zeros(5), torch.zeros(5), sizes, sizes], dim=1))
    # floor(4 + log2(s / 224)) clamped to [2, 5], minus 2
    assert assign_boxes_to_levels([boxes], 2, 5).tolist() == [0, 1, 2, 3, 3]


def test_pooler_routes_boxes_to_their_level():
    pooler = ROIPooler(
        output_size=2, scales=[1 / 4, 1 / 8], sampling_ratio=0, pooler_type="ROIAlignV2"
    )
    features = [torch.full((1, 1, 16, 16), 1.0), torch.full((1, 1, 8, 8), 2.0)]
    boxes = [Boxes(torch.tensor([[0.0, 0, 20, 20], [0, 0, 60, 60]]))]
    out = pooler(features, boxes)
    # 20 px -> level 2 (the 1.0 map); 60 px -> floor(4 + log2(60/224)) = 2 -> still the 1.0 map
    assert torch.allclose(out[:, 0].mean(dim=(1, 2)), torch.tensor([1.0, 1.0]))
    # 63 px -> level 2, clamped up to this pooler's level 3; 250 px -> level 4
    boxes = [Boxes(torch.tensor([[0.0, 0, 63, 63], [0, 0, 250, 250]]))]
    pooler = ROIPooler(
        output_size=2, scales=[1 / 8, 1 / 16], sampling_ratio=0, pooler_type="ROIAlignV2"
    )
    out = pooler([torch.full((1, 1, 32, 32), 3.0), torch.full((1, 1, 16, 16), 4.0)], boxes)
    assert torch.allclose(out[:, 0].mean(dim=(1, 2)), torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="powers of 1/2"):
        ROIPooler(output_size=2, scales=[1 / 3], sampling_ratio=0, pooler_type="ROIAlignV2")

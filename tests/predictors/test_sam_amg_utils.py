"""Automatic-mask helpers: RLE, stability score, boxes, crops, grids, small regions."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from masktron.predictors.amg_utils import (
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    build_point_grid,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)


def _random_masks(n=6, h=13, w=17, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, h, w)) < 0.4
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2, 0, 0] = True  # starts with a foreground run
    masks[3, 0, 0] = False
    return masks


def test_rle_round_trip_and_pycocotools_agreement():
    masks = _random_masks()
    rles = mask_to_rle_pytorch(torch.from_numpy(masks))
    assert rles[0]["counts"] == [13 * 17] and rles[1]["counts"] == [0, 13 * 17]
    for mask, rle in zip(masks, rles):
        assert rle["size"] == [13, 17]
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
        assert area_from_rle(rle) == mask.sum()
        # the same run lengths as pycocotools' encoder (column-major, zeros first)
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        coco = coco_encode_rle(rle)
        assert coco["counts"] == ref["counts"].decode() and coco["size"] == [13, 17]
        np.testing.assert_array_equal(mask_utils.decode(coco).astype(bool), mask)


def test_rle_of_no_masks():
    assert mask_to_rle_pytorch(torch.zeros(0, 4, 5, dtype=torch.bool)) == []


def test_rle_to_mask_rejects_wrong_length():
    with pytest.raises(ValueError, match="sum to 5"):
        rle_to_mask({"size": [2, 3], "counts": [2, 3]})


def test_stability_score_by_hand():
    logits = torch.tensor([[[-2.0, -0.5, 0.5], [1.5, 2.5, 0.9]]])  # (1, 2, 3)
    # > +1: {1.5, 2.5} = 2 pixels; > -1: all but -2.0 = 5 pixels
    score = calculate_stability_score(logits, 0.0, 1.0)
    assert score.shape == (1,) and score.item() == pytest.approx(2 / 5)
    assert torch.isnan(calculate_stability_score(torch.full((1, 2, 2), -5.0), 0.0, 1.0)).all()


def test_batched_mask_to_box():
    masks = torch.zeros(2, 3, 5, 6, dtype=torch.bool)
    masks[0, 0, 1:3, 2:5] = True
    masks[0, 1, 4, 0] = True
    masks[1, 2] = True
    boxes = batched_mask_to_box(masks)
    assert boxes.shape == (2, 3, 4) and boxes.dtype == torch.int64
    assert boxes[0, 0].tolist() == [2, 1, 4, 2]
    assert boxes[0, 1].tolist() == [0, 4, 0, 4]
    assert boxes[0, 2].tolist() == [0, 0, 0, 0]  # empty
    assert boxes[1, 2].tolist() == [0, 0, 5, 4]
    assert batched_mask_to_box(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)


def test_point_grids():
    grid = build_point_grid(2)
    np.testing.assert_allclose(grid, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    grids = build_all_layer_point_grids(8, 2, 2)
    assert [len(g) for g in grids] == [64, 16, 4]


def test_crop_boxes_by_hand():
    boxes, layers = generate_crop_boxes((100, 200), 1, 0.5)
    # overlap int(0.5 * 100 * 2 / 2) = 50; crop w = ceil((50 + 200) / 2) = 125, h = 75
    assert boxes == [
        [0, 0, 200, 100],
        [0, 0, 125, 75],
        [0, 25, 125, 100],
        [75, 0, 200, 75],
        [75, 25, 200, 100],
    ]
    assert layers == [0, 1, 1, 1, 1]
    boxes, layers = generate_crop_boxes((64, 64), 2, 512 / 1500)
    assert len(boxes) == 1 + 4 + 16 and layers.count(2) == 16
    assert all(0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 for x0, y0, x1, y1 in boxes)


def test_uncrop_helpers_and_edge_filter():
    crop = [10, 20, 60, 70]
    boxes = torch.tensor([[0, 0, 5, 5], [15, 15, 30, 30], [30, 30, 49, 49]])
    assert uncrop_boxes_xyxy(boxes, crop)[0].tolist() == [10, 20, 15, 25]
    assert uncrop_points(torch.tensor([[1.5, 2.5]]), crop).tolist() == [[11.5, 22.5]]
    masks = torch.ones(1, 50, 50, dtype=torch.bool)
    full = uncrop_masks(masks, crop, 100, 80)
    assert (
        full.shape == (1, 100, 80)
        and full.sum() == 2500
        and full[0, 20, 10]
        and not full[0, 19, 10]
    )
    # atol 20 px: a box edge near a crop edge that is not near an image edge is cut by the crop
    image = [0, 0, 200, 200]
    inner = torch.tensor([[0, 0, 30, 30], [40, 40, 60, 60]])  # crop coordinates
    assert is_box_near_crop_edge(inner, [50, 60, 150, 160], image).tolist() == [True, False]
    corner = torch.tensor([[70, 70, 100, 100], [0, 10, 50, 50]])
    assert is_box_near_crop_edge(corner, [100, 100, 200, 200], image).tolist() == [False, True]


def test_box_xyxy_to_xywh_copies():
    box = torch.tensor([1, 2, 4, 7])
    assert box_xyxy_to_xywh(box).tolist() == [1, 2, 3, 5] and box.tolist() == [1, 2, 4, 7]


def test_batch_iterator():
    assert [b for b in batch_iterator(2, [1, 2, 3], "abc")] == [[[1, 2], "ab"], [[3], "c"]]
    with pytest.raises(ValueError):
        next(batch_iterator(2, [1], [1, 2]))


def test_remove_small_regions_holes_and_islands():
    mask = np.zeros((8, 8), bool)
    mask[1:7, 1:7] = True
    mask[3, 3] = False  # a 1-pixel hole
    mask[0, 7] = True  # touches the big region diagonally: 8-connected, not an island
    filled, changed = remove_small_regions(mask, 2, "holes")
    assert changed and filled[3, 3] and filled.sum() == mask.sum() + 1
    same, changed = remove_small_regions(filled, 2, "islands")
    assert not changed and np.array_equal(same, filled)
    islands = np.zeros((6, 6), bool)
    islands[0, 0] = True
    islands[3:6, 3:6] = True
    kept, changed = remove_small_regions(islands, 3, "islands")
    assert changed and not kept[0, 0] and kept[3:6, 3:6].all()
    only_small = np.zeros((6, 6), bool)
    only_small[0, 0] = only_small[4, 4] = only_small[4, 5] = True
    kept, changed = remove_small_regions(only_small, 5, "islands")
    assert changed and kept.sum() == 2 and kept[4, 4]  # the largest small island survives
    with pytest.raises(ValueError, match="mode"):
        remove_small_regions(mask, 2, "edges")

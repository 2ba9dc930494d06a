"""Mask pasting (Detectron2's rules) and NMS on hand-made inputs."""

import torch

from masktron.layers import batched_nms, nms, paste_masks_in_image


def test_full_mask_fills_exactly_the_pixels_whose_centres_are_in_the_box():
    masks = torch.ones(1, 28, 28)
    out = paste_masks_in_image(masks, torch.tensor([[2.0, 3.0, 6.0, 8.0]]), (10, 12))
    expected = torch.zeros(10, 12, dtype=torch.bool)
    expected[3:8, 2:6] = True  # centres 2.5..5.5 in x, 3.5..7.5 in y
    assert out.dtype == torch.bool and torch.equal(out[0], expected)


def test_left_half_mask_pastes_into_left_half_of_box():
    masks = torch.zeros(1, 28, 28)
    masks[:, :, :14] = 1.0
    out = paste_masks_in_image(masks, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), (8, 8))[0]
    # pixel centres x = 0.5..3.5 sample the ones, 4.5.. the zeros; at the seam bilinear gives 0.5+
    assert out[:, :4].all() and not out[:, 5:].any()


def test_threshold_below_zero_returns_probabilities():
    masks = torch.full((2, 14, 14), 0.25)
    out = paste_masks_in_image(masks, torch.tensor([[0.0, 0, 4, 4], [2, 2, 6, 6]]), (6, 6), -1)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :4, :4], torch.tensor(0.25))
    assert out[0, 5:, 5:].abs().max() == 0


def test_empty_and_degenerate_boxes():
    assert paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 5)).shape == (
        0,
        5,
        5,
    )
    out = paste_masks_in_image(torch.ones(1, 28, 28), torch.tensor([[20.0, 20, 30, 30]]), (5, 5))
    assert not out.any()


def test_nms_keeps_best_and_suppresses_overlaps_by_threshold():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30.0], [0, 0, 10, 5]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(0, 1) = 90/110 = 0.82; IoU(0, 3) = 0.5; IoU(1, 3) = 45/105
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    # at 0.49 box 0 falls to box 3; box 1 (IoU 0.43 with 3) survives, since 0 no longer counts
    assert nms(boxes, scores, 0.49).tolist() == [3, 1, 2]


def test_batched_nms_never_suppresses_across_groups():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([1, 1]), 0.5).tolist() == [0]

"""`paste_masks_in_image(batched=True)`: Detectron2's GPU paste (whole image, batched calls)."""

from __future__ import annotations

import torch

from masktron.layers import mask_ops, paste_masks_in_image


def _inputs():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(5, 28, 28, generator=g)
    xy = torch.rand(5, 2, generator=g) * torch.tensor([70.0, 50.0])
    wh = 4 + torch.rand(5, 2, generator=g) * 40  # at most 44 px: under two mask cells per pixel
    return masks, torch.cat([xy, xy + wh], dim=1)


def test_batched_equals_per_box_windows_for_small_boxes(monkeypatch):
    masks, boxes = _inputs()
    windowed = paste_masks_in_image(masks, boxes, (60, 80))
    # A small chunk size so that several batched calls fill the output.
    monkeypatch.setattr(mask_ops, "_CHUNK_BYTES", 2 * 60 * 80 * 4)
    batched = paste_masks_in_image(masks, boxes, (60, 80), batched=True)
    assert torch.equal(batched, windowed) and windowed.any()
    probs = paste_masks_in_image(masks, boxes, (60, 80), threshold=-1, batched=True)
    assert torch.allclose(probs, paste_masks_in_image(masks, boxes, (60, 80), threshold=-1))


def test_batched_spreads_past_the_window_only_by_half_a_cell():
    masks = torch.ones(1, 28, 28)
    box = torch.tensor([[20.0, 10.0, 300.0, 150.0]])  # a cell is 10 x 5 px
    windowed = paste_masks_in_image(masks, box, (200, 400), threshold=-1)
    batched = paste_masks_in_image(masks, box, (200, 400), threshold=-1, batched=True)
    inside = torch.zeros(200, 400, dtype=torch.bool)
    inside[9:151, 19:301] = True  # the window: floor(x0) - 1 to ceil(x1) + 1, exclusive
    assert torch.allclose(batched[0][inside], windowed[0][inside])
    assert (windowed[0][~inside] == 0).all()
    spread = batched[0] > 0
    ys, xs = spread.nonzero(as_tuple=True)
    assert xs.min() >= 20 - 5 and xs.max() <= 300 + 5  # half a cell: 5 px
    assert ys.min() >= 10 - 3 and ys.max() <= 150 + 3  # 2.5 px
    assert spread[~inside].any()

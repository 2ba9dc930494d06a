"""Connected components and SAM 2's hole filling in torch ops, against scipy.ndimage.label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from masktron.layers.connected_components import connected_components, fill_holes_in_mask_scores

EIGHT = np.ones((3, 3), dtype=bool)


def test_hand_made_grid():
    m = torch.tensor(
        [
            [1, 1, 0, 0, 1],
            [0, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],  # touches the first blob diagonally: one component
            [1, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )[None, None]
    labels, counts = connected_components(m)
    assert counts[0, 0].tolist() == [
        [4, 4, 0, 0, 1],
        [0, 4, 0, 0, 0],
        [0, 0, 4, 0, 0],
        [1, 0, 0, 0, 1],
    ]
    assert labels[0, 0, 0, 0] == labels[0, 0, 2, 2] != labels[0, 0, 3, 0] > 0
    assert (labels[~m] == 0).all()


@pytest.mark.parametrize("density", [0.3, 0.55, 0.7])
def test_same_components_and_holes_as_scipy(density):
    g = torch.Generator().manual_seed(int(density * 100))
    masks = torch.rand(3, 1, 40, 52, generator=g) < density
    labels, counts = connected_components(masks)
    for i in range(3):
        ref, n = ndimage.label(masks[i, 0].numpy(), structure=EIGHT)
        ours = labels[i, 0].numpy()
        assert len(np.unique(ours[ours > 0])) == n
        for j in range(1, n + 1):  # one label per scipy component, counts its area
            assert len(np.unique(ours[ref == j])) == 1
            assert (counts[i, 0].numpy()[ref == j] == (ref == j).sum()).all()
    scores = torch.randn(3, 1, 40, 52, generator=g) + (0.8 - density)
    for area in (1, 4, 8, 30):
        filled = fill_holes_in_mask_scores(scores, area)
        for i in range(3):
            ref, _ = ndimage.label((scores[i, 0] <= 0).numpy(), structure=EIGHT)
            sizes = np.bincount(ref.ravel())
            hole = (ref > 0) & (sizes[ref] <= area)
            expected = np.where(hole, np.float32(0.1), scores[i, 0].numpy())
            assert np.array_equal(filled[i, 0].numpy(), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_area must be positive"):
        fill_holes_in_mask_scores(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        connected_components(torch.zeros(4, 4, dtype=torch.bool))

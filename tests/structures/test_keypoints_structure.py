"""`Keypoints` and the heat-map conversions of the keypoint head, on hand-made grids."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from masktron.structures import Instances, Keypoints, heatmaps_to_keypoints


def test_keypoints_structure_indexes_concatenates_and_rides_in_instances():
    kps = Keypoints([[[1.0, 2.0, 2.0]] * 3, [[4.0, 5.0, 0.0]] * 3])
    assert kps.tensor.shape == (2, 3, 3) and kps.tensor.dtype == torch.float32
    assert len(kps[1]) == 1 and len(kps[torch.tensor([True, False])]) == 1
    inst = Instances((10, 10), gt_keypoints=kps)
    both = Instances.cat([inst, inst[torch.tensor([1])]])
    assert both.gt_keypoints.tensor.shape == (3, 3, 3)
    assert both.gt_keypoints.tensor[2, 0, 0] == 4.0
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        Keypoints(torch.zeros(2, 3))


def test_to_heatmap_maps_points_to_cells_of_their_box():
    # Box [10, 20, 30, 40] on a 4x4 grid: cells 5 px wide.
    box = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    pts = torch.tensor(
        [[[10.0, 20.0, 2], [29.9, 24.9, 2], [30.0, 40.0, 1], [12.0, 22.0, 0], [31.0, 25.0, 2]]]
    )
    index, valid = Keypoints(pts).to_heatmap(box, 4)
    # (x 0, y 0), (x 3, y 0), the far edge -> last cell, unlabelled, outside the box
    assert valid.tolist() == [[1, 1, 1, 0, 0]]
    assert index[0, :3].tolist() == [0, 3, 15]


def _reference_heatmaps_to_keypoints(maps, rois):
    """Detectron2's rule written plainly with F.interpolate, to check the fast version."""
    out = []
    for m, (x0, y0, x1, y1) in zip(maps, rois.tolist()):
        w, h = max(x1 - x0, 1), max(y1 - y0, 1)
        wc, hc = int(torch.tensor(w).ceil()), int(torch.tensor(h).ceil())
        up = F.interpolate(m[None], size=(hc, wc), mode="bicubic", align_corners=False)[0]
        flat = up.reshape(len(m), -1)
        pos = flat.argmax(1)
        ys, xs = pos // wc, pos % wc
        soft = (up - flat.max(1)[0][:, None, None]).exp()
        norm = (m - flat.max(1)[0][:, None, None]).exp().sum((1, 2))
        score = soft.reshape(len(m), -1)[torch.arange(len(m)), pos] / norm
        x = (xs.float() + 0.5) * w / wc + x0
        y = (ys.float() + 0.5) * h / hc + y0
        out.append(torch.stack([x, y, flat.max(1)[0], score], 1))
    return torch.stack(out)


def test_heatmaps_to_keypoints_follows_detectron2s_bicubic_rule():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 5, 56, 56, generator=g) * 3
    rois = torch.tensor(
        [
            [0.0, 0.0, 56.0, 56.0],
            [10.5, 3.2, 97.1, 203.9],
            [5.0, 5.0, 5.4, 5.2],  # smaller than a pixel: clamped to 1
            [100.0, 50.0, 130.0, 61.0],
            [0.0, 0.0, 300.0, 170.0],
            [7.7, 9.9, 64.2, 58.1],
        ]
    )
    ours = heatmaps_to_keypoints(maps, rois)
    ref = _reference_heatmaps_to_keypoints(maps, rois)
    torch.testing.assert_close(ours[..., :2], ref[..., :2])
    torch.testing.assert_close(ours[..., 2:], ref[..., 2:], rtol=1e-4, atol=1e-4)


def test_peak_cell_decodes_to_its_centre():
    maps = torch.full((1, 1, 56, 56), -10.0)
    maps[0, 0, 10, 40] = 10.0  # row 10, column 40
    (kp,) = heatmaps_to_keypoints(maps, torch.tensor([[100.0, 200.0, 156.0, 256.0]]))
    assert kp[0, 0].item() == pytest.approx(100 + 40.5) and kp[0, 1].item() == pytest.approx(210.5)
    # the softmax mass of the peak cell: exp(0) / (1 + 3135 exp(-20))
    assert kp[0, 3].item() == pytest.approx(1 / (1 + 3135 * np.exp(-20.0)), rel=1e-5)

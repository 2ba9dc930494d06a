from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from scipy import ndimage

from masktron.structures import BitMasks, PolygonMasks
from masktron.visualization.mask_ops import (
    anchor_point,
    as_vis_masks,
    binarize,
    connected_components,
    erode,
)
from masktron.visualization.vis_image import VisImage


@pytest.mark.parametrize("seed", range(4))
def test_connected_components_match_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        h, w = rng.integers(1, 50, size=2)
        mask = rng.random((h, w)) < rng.uniform(0.1, 0.7)
        labels, areas = connected_components(mask)
        ref, n = ndimage.label(mask, structure=np.ones((3, 3)))  # 8-connectivity
        assert labels.max() == n and (labels[~mask] == 0).all()
        # The same partition: every (ours, scipy's) label pair is one-to-one.
        pairs = set(zip(labels[mask].tolist(), ref[mask].tolist()))
        assert len(pairs) == n
        np.testing.assert_array_equal(areas, np.bincount(labels.ravel(), minlength=n + 1))


def test_connected_components_edge_cases():
    labels, areas = connected_components(np.zeros((3, 4), bool))
    assert labels.max() == 0 and areas.tolist() == [12]
    labels, areas = connected_components(np.ones((3, 4), bool))
    assert (labels == 1).all() and areas.tolist() == [0, 12]
    # Diagonal neighbours join (8-connectivity); a one-pixel gap separates.
    diag = np.eye(5, dtype=bool)
    assert connected_components(diag)[0].max() == 1
    gap = np.array([[1, 0, 1]], dtype=bool)
    assert connected_components(gap)[0].max() == 2


def test_erode_shrinks_by_one_pixel_per_iteration():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    np.testing.assert_array_equal(np.argwhere(erode(mask)).min(0), [3, 3])
    assert erode(mask).sum() == 9 and erode(mask, 2).sum() == 1 and not erode(mask, 3).any()
    assert not erode(np.ones((4, 4), bool), 2).any()  # the outside counts as background


def test_anchor_point_lies_inside_a_ring():
    yy, xx = np.mgrid[:60, :60]
    r2 = (yy - 30) ** 2 + (xx - 30) ** 2
    ring = (r2 < 25**2) & (r2 > 20**2)  # the median (the centre) is not in the mask
    x, y = anchor_point(ring)
    assert ring[int(y), int(x)]
    square = np.zeros((50, 50), bool)
    square[10:20, 30:40] = True
    x, y = anchor_point(square)
    assert 30 <= x <= 40 and 10 <= y <= 20
    with pytest.raises(ValueError, match="empty"):
        anchor_point(np.zeros((4, 4), bool))


def test_binarize():
    np.testing.assert_array_equal(binarize(np.array([0.2, 0.5, 0.9])), [False, True, True])
    np.testing.assert_array_equal(binarize(np.array([0, 3, 255], np.uint8)), [False, True, True])


def _square(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_as_vis_masks_reads_every_format():
    h, w = 30, 40
    m = _square(h, w, 5, 6, 15, 20)
    rle = mask_util.encode(np.asfortranarray(m))
    flat = m.flatten(order="F")  # uncompressed RLE counts run down columns
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], change])).tolist()
    uncompressed = {"counts": counts, "size": [h, w]}
    polygon = [[5, 6, 15, 6, 15, 20, 5, 20]]
    formats = [
        torch.from_numpy(m[None].astype(bool)),
        m[None].astype(np.float32),
        BitMasks(torch.from_numpy(m[None])),
        PolygonMasks([polygon]),
        [rle],
        [uncompressed],
        [polygon],
        [m],
    ]
    for masks in formats:
        (vm,) = as_vis_masks(masks, h, w)
        np.testing.assert_array_equal(vm.bitmap, m.astype(bool), err_msg=str(type(masks)))
        assert vm.area() == m.sum()


def test_as_vis_masks_names_the_bad_argument():
    with pytest.raises(ValueError, match=r"pred_masks.*\(N, 30, 40\)"):
        as_vis_masks(np.zeros((2, 30, 41), bool), 30, 40, "pred_masks")
    with pytest.raises(ValueError, match=r"masks\[1\]"):
        as_vis_masks([np.zeros((30, 40)), np.zeros((3, 3))], 30, 40)
    with pytest.raises(ValueError, match="counts"):
        as_vis_masks([{"size": [30, 40]}], 30, 40)
    with pytest.raises(ValueError, match="type"):
        as_vis_masks([3.5], 30, 40)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_polygon_and_bitmap_render_alike(scale):
    h, w = 50, 70
    poly = np.array([10.0, 5.0, 60.0, 12.0, 40.0, 45.0, 8.0, 30.0])
    (from_poly,) = as_vis_masks([[poly]], h, w)
    (from_bits,) = as_vis_masks(from_poly.bitmap[None], h, w)
    vis = VisImage(np.zeros((h, w, 3), np.uint8), scale=scale)
    canvas = []
    for vm in (from_poly, from_bits):
        top, left, crop = vm.render(vis)
        full = np.zeros((vis.out_height, vis.out_width), bool)
        full[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        canvas.append(full)
    iou = (canvas[0] & canvas[1]).sum() / (canvas[0] | canvas[1]).sum()
    assert iou > 0.93

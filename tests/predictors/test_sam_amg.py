"""SamAutomaticMaskGenerator: parity with Meta's generator, filters, NMS, output modes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures_util_sam import expected, fixture_predictor, load_rgb, pairwise_mask_iou, unpack_masks
from scipy.optimize import linear_sum_assignment
from torchvision.ops import nms

from masktron.predictors import amg_base
from masktron.predictors.amg_utils import build_point_grid, remove_small_regions, rle_to_mask
from masktron.predictors.auto_mask import SamAutomaticMaskGenerator

OPEN = {
    "pred_iou_thresh": -1e9,
    "stability_score_thresh": 0,
    "box_nms_thresh": 1,
    "crop_nms_thresh": 1,
}


@pytest.fixture(scope="module")
def astronaut():
    return load_rgb("astronaut")


def _check_parity(records, key):
    """Same set of masks (IoU >= 0.98, one to one, any order); matched records agree."""
    ref = unpack_masks(key)
    ours = np.stack([r["segmentation"] for r in records])
    assert ours.shape == ref.shape
    iou = pairwise_mask_iou(ref, ours)
    rows, cols = linear_sum_assignment(-iou)
    assert iou[rows, cols].min() >= 0.98
    exp = expected()
    pick = [records[j] for j in cols]
    np.testing.assert_allclose(
        [r["predicted_iou"] for r in pick], exp[f"{key}/predicted_iou"][rows], atol=2e-3
    )
    np.testing.assert_allclose(
        [r["stability_score"] for r in pick], exp[f"{key}/stability_score"][rows], atol=1e-2
    )
    np.testing.assert_allclose([r["bbox"] for r in pick], exp[f"{key}/bbox"][rows], atol=1)
    np.testing.assert_allclose([r["point_coords"] for r in pick], exp[f"{key}/point_coords"][rows])
    np.testing.assert_allclose([r["crop_box"] for r in pick], exp[f"{key}/crop_box"][rows])
    np.testing.assert_allclose([r["area"] for r in pick], exp[f"{key}/area"][rows], rtol=0.01)


def test_open_filters_match_reference(astronaut):
    gen = SamAutomaticMaskGenerator(fixture_predictor(), points_per_side=8, **OPEN)
    records = gen.generate(astronaut)
    _check_parity(records, "astronaut/amg_open")
    r = records[0]
    assert set(r) == {
        "segmentation",
        "area",
        "bbox",
        "predicted_iou",
        "point_coords",
        "stability_score",
        "crop_box",
    }
    assert r["segmentation"].shape == astronaut.shape[:2] and r["segmentation"].dtype == bool
    assert isinstance(r["area"], int) and r["area"] == r["segmentation"].sum()
    assert all(isinstance(v, int) for v in r["bbox"] + r["crop_box"])
    assert isinstance(r["predicted_iou"], float) and isinstance(r["stability_score"], float)


@pytest.mark.slow
def test_crop_layer_matches_reference(astronaut):
    gen = SamAutomaticMaskGenerator(fixture_predictor(), points_per_side=8, crop_n_layers=1, **OPEN)
    _check_parity(gen.generate(astronaut), "astronaut/amg_crops")


@pytest.fixture(scope="module")
def open_records(astronaut):
    return SamAutomaticMaskGenerator(fixture_predictor(), points_per_side=4, **OPEN).generate(
        astronaut
    )


def _same_records(a, b):
    key = lambda r: (tuple(r["point_coords"][0]), r["predicted_iou"])  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["predicted_iou"] == pytest.approx(y["predicted_iou"], abs=1e-5)
        assert x["bbox"] == y["bbox"]
        assert np.array_equal(x["segmentation"], y["segmentation"])


def test_early_iou_and_stability_filters_equal_filtering_afterwards(astronaut, open_records):
    ious = np.array([r["predicted_iou"] for r in open_records])
    stab = np.array([r["stability_score"] for r in open_records])
    # Meta's semantics: a threshold <= 0 switches its filter off, so pick positive ones
    iou_t = float(np.quantile(ious[ious > 0], 0.3))
    stab_t = float(np.quantile(stab[stab > 0], 0.3))
    gen = SamAutomaticMaskGenerator(
        fixture_predictor(),
        points_per_side=4,
        pred_iou_thresh=iou_t,
        stability_score_thresh=stab_t,
        box_nms_thresh=1,
    )
    got = gen.generate(astronaut)
    want = [
        r for r in open_records if r["predicted_iou"] > iou_t and r["stability_score"] >= stab_t
    ]
    assert 0 < len(want) < len(open_records)
    _same_records(got, want)


def test_upsampling_block_size_leaves_records_unchanged(astronaut, open_records, monkeypatch):
    """Masks are upsampled a block at a time (`_UPSAMPLE_BLOCK_BYTES`): one mask per block and
    all at once give the same records, bit for bit and in the same order."""
    assert len(open_records) > 8  # (several blocks of the default size)
    for block_bytes in (1, 1 << 40):
        monkeypatch.setattr(amg_base, "_UPSAMPLE_BLOCK_BYTES", block_bytes)
        got = SamAutomaticMaskGenerator(fixture_predictor(), points_per_side=4, **OPEN).generate(
            astronaut
        )
        assert len(got) == len(open_records)
        for x, y in zip(got, open_records):
            assert x["predicted_iou"] == y["predicted_iou"]
            assert x["stability_score"] == y["stability_score"]
            assert x["bbox"] == y["bbox"]
            assert np.array_equal(x["segmentation"], y["segmentation"])


def test_box_nms(astronaut, open_records):
    gen = SamAutomaticMaskGenerator(
        fixture_predictor(), points_per_side=4, **{**OPEN, "box_nms_thresh": 0.5}
    )
    got = gen.generate(astronaut)
    boxes = torch.tensor([r["bbox"] for r in open_records], dtype=torch.float)
    boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY
    keep = nms(boxes, torch.tensor([r["predicted_iou"] for r in open_records]), 0.5)
    assert len(keep) < len(open_records)
    _same_records(got, [open_records[i] for i in keep.tolist()])
    # records come out by decreasing predicted IoU, as the NMS orders them
    scores = [r["predicted_iou"] for r in got]
    assert scores == sorted(scores, reverse=True)


def test_output_modes_and_explicit_grid(astronaut, open_records):
    common = {"point_grids": [build_point_grid(4)], "points_per_side": None, **OPEN}
    rle = SamAutomaticMaskGenerator(fixture_predictor(), output_mode="uncompressed_rle", **common)
    coco = SamAutomaticMaskGenerator(fixture_predictor(), output_mode="coco_rle", **common)
    rle_records, coco_records = rle.generate(astronaut), coco.generate(astronaut)
    import pycocotools.mask as mask_utils

    json.dumps(coco_records)  # COCO RLE output is JSON-ready
    assert len(rle_records) == len(coco_records) == len(open_records)
    for a, b, c in zip(open_records, rle_records, coco_records):
        np.testing.assert_array_equal(rle_to_mask(b["segmentation"]), a["segmentation"])
        np.testing.assert_array_equal(
            mask_utils.decode(c["segmentation"]).astype(bool), a["segmentation"]
        )
        assert a["area"] == b["area"] == c["area"]


def test_min_mask_region_area_leaves_no_small_regions(astronaut):
    area = 300
    gen = SamAutomaticMaskGenerator(
        fixture_predictor(),
        points_per_side=4,
        min_mask_region_area=area,
        **{**OPEN, "box_nms_thresh": 0.9},
    )
    records = gen.generate(astronaut)
    assert records
    for r in records:
        m = r["segmentation"]
        assert not remove_small_regions(m, area, "holes")[1]
        assert not remove_small_regions(m, area, "islands")[1]
        assert r["area"] == m.sum()
        ys, xs = np.nonzero(m)
        assert r["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]


def test_bad_arguments_and_images():
    model = fixture_predictor()
    with pytest.raises(ValueError, match="exactly one of points_per_side and point_grids"):
        SamAutomaticMaskGenerator(model, points_per_side=8, point_grids=[build_point_grid(2)])
    with pytest.raises(ValueError, match="exactly one"):
        SamAutomaticMaskGenerator(model, points_per_side=None)
    with pytest.raises(ValueError, match="output_mode"):
        SamAutomaticMaskGenerator(model, output_mode="polygons")
    with pytest.raises(ValueError, match="crop_n_layers=1 needs 2"):
        SamAutomaticMaskGenerator(
            model, points_per_side=None, point_grids=[build_point_grid(2)], crop_n_layers=1
        )
    gen = SamAutomaticMaskGenerator(model, points_per_side=2)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        gen.generate(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        gen.generate(np.zeros((8, 8, 3), np.float32))

"""SAM2AutomaticMaskGenerator on masktron's SAM 2.1 tiny (fixture checkpoint) against Meta's
stored records: every filter opened, use_m2m, and Meta's default filters; output modes; errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from sam2_image_util import TINY, check_same_masks, fixture_predictor, load_rgb

from masktron.predictors.amg_utils import rle_to_mask
from masktron.predictors.sam2_auto_mask import SAM2AutomaticMaskGenerator

OPEN = {"pred_iou_thresh": -1e9, "stability_score_thresh": 0, "box_nms_thresh": 1}
RUNS = {
    "amg_open": {"points_per_side": 4, **OPEN},
    "amg_m2m": {"points_per_side": 2, "use_m2m": True, **OPEN},
    "amg_default": {"points_per_side": 4},
}
KEYS = {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score"}


@pytest.fixture(scope="module")
def astronaut():
    return load_rgb("astronaut")


@pytest.mark.parametrize("run", RUNS)
def test_records_match_meta(astronaut, run):
    generator = SAM2AutomaticMaskGenerator(fixture_predictor(TINY), **RUNS[run])
    records = generator.generate(astronaut)
    check_same_masks(records, f"{TINY}/astronaut/{run}")
    r = records[0]
    assert set(r) == KEYS | {"crop_box"}
    assert r["segmentation"].shape == astronaut.shape[:2] and r["segmentation"].dtype == bool
    assert isinstance(r["area"], int) and r["area"] == r["segmentation"].sum()
    assert all(isinstance(v, int) for v in r["bbox"] + r["crop_box"])
    assert isinstance(r["predicted_iou"], float) and isinstance(r["stability_score"], float)


def test_output_modes_encode_the_same_masks(astronaut):
    kwargs = {"points_per_side": 1, **OPEN}  # one point, three masks
    predictor = fixture_predictor(TINY)
    binary = SAM2AutomaticMaskGenerator(predictor, **kwargs).generate(astronaut)
    rle = SAM2AutomaticMaskGenerator(predictor, output_mode="uncompressed_rle", **kwargs)
    coco = SAM2AutomaticMaskGenerator(predictor, output_mode="coco_rle", **kwargs)
    from pycocotools import mask as mask_utils

    for a, b, c in zip(binary, rle.generate(astronaut), coco.generate(astronaut), strict=True):
        np.testing.assert_array_equal(rle_to_mask(b["segmentation"]), a["segmentation"])
        assert isinstance(c["segmentation"]["counts"], str)
        np.testing.assert_array_equal(mask_utils.decode(c["segmentation"]), a["segmentation"])
        assert a["predicted_iou"] == b["predicted_iou"] == c["predicted_iou"]


def test_meta_defaults_and_argument_errors():
    predictor = fixture_predictor(TINY)
    generator = SAM2AutomaticMaskGenerator(predictor)
    assert (generator.pred_iou_thresh, generator.stability_score_thresh) == (0.8, 0.95)
    assert (generator.box_nms_thresh, generator.mask_threshold) == (0.7, 0.0)
    assert len(generator.point_grids[0]) == 32 * 32
    assert generator.multimask_output and not generator.use_m2m
    with pytest.raises(ValueError, match="exactly one of points_per_side and point_grids"):
        SAM2AutomaticMaskGenerator(predictor, point_grids=[np.zeros((4, 2))])
    with pytest.raises(ValueError, match="output_mode"):
        SAM2AutomaticMaskGenerator(predictor, output_mode="png")
    with pytest.raises(ValueError, match="crop_n_layers=1 needs 2"):
        SAM2AutomaticMaskGenerator(
            predictor, points_per_side=None, point_grids=[np.zeros((4, 2))], crop_n_layers=1
        )
    with pytest.raises(ValueError, match="uint8"):
        generator.generate(np.zeros((8, 8, 3), dtype=np.float32))

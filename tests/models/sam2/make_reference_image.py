"""Regenerate `data/sam2_image_reference.npz`: Meta's SAM 2 image outputs on fixture weights.

Runs Meta's `sam2` 1.1.0 (the `parity` extra; CPU, no CUDA extension) with the checkpoint that
`tests/sam2_fixtures_util.sam2_fixture_checkpoint(variant)` writes, on photos of
`../shared/data/images`, and stores what `tests/predictors/test_sam2_image*.py` compare against:

- `SAM2ImagePredictor.predict` for the prompt cases of the SAM fixtures (README of
  ../shared/fixtures): `point1`, `point2neg`, `box`, `box_point` with `multimask_output` False and
  True, and `point_mask` (point1 plus the low-res logits of point1/mm1's best mask as
  `mask_input`, mm1 only). Keys `<variant>/<image>/<case>/mm<0|1>/{masks_packed, masks_shape,
  iou_predictions}`; `<variant>/<image>/point1/mm1/low_res_best` (float16) is the mask input.
- `SAM2AutomaticMaskGenerator` on astronaut with the tiny model: `amg_open` (points_per_side=4,
  every filter and NMS opened), `amg_m2m` (the same with use_m2m=True, points_per_side=2) and
  `amg_default` (Meta's default filters and NMS, points_per_side=4). Keys
  `<variant>/astronaut/<run>/{masks_packed, masks_shape, area, bbox, predicted_iou,
  stability_score, point_coords, crop_box}`.

Masks are `np.packbits(masks, axis=-1)` with their (N, H, W) shape. Usage (from the repo root):
    python tests/models/sam2/make_reference_image.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ for sam2_fixtures_util

from fixtures_util_sam import prompt_kwargs  # noqa: E402
from sam2_fixtures_util import SHARED, build_meta_sam2  # noqa: E402

OUT = HERE / "data" / "sam2_image_reference.npz"
# (variant, image, cases): base+ costs ~3x tiny per encoding, so it runs on one photo.
RUNS = (
    ("sam2.1_hiera_t", "astronaut", ("point1", "point2neg", "box", "box_point", "point_mask")),
    ("sam2.1_hiera_t", "coffee", ("point2neg", "box")),
    ("sam2.1_hiera_b+", "astronaut", ("point1", "point2neg", "box", "box_point", "point_mask")),
)
OPEN = {"pred_iou_thresh": -1e9, "stability_score_thresh": 0, "box_nms_thresh": 1}
# The decoder runs once per grid point (twice with use_m2m): small grids keep the tests fast.
AMG_RUNS = {
    "amg_open": {"points_per_side": 4, **OPEN},
    "amg_m2m": {"points_per_side": 2, "use_m2m": True, **OPEN},
    "amg_default": {"points_per_side": 4},
}


def load_rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(SHARED / "data" / "images" / f"{name}.png").convert("RGB"))


def pack(out: dict[str, np.ndarray], key: str, masks: np.ndarray) -> None:
    masks = np.asarray(masks, dtype=bool)
    out[f"{key}/masks_packed"] = np.packbits(masks, axis=-1)
    out[f"{key}/masks_shape"] = np.array(masks.shape, dtype=np.int64)


def main() -> None:
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    torch.manual_seed(0)
    out: dict[str, np.ndarray] = {}
    models = {}
    for variant, name, cases in RUNS:
        model = models.setdefault(variant, build_meta_sam2(variant))
        predictor = SAM2ImagePredictor(model)
        image = load_rgb(name)
        h, w = image.shape[:2]
        predictor.set_image(image)
        best_low_res = None
        for case in cases:
            for mm in (False, True):
                if case == "point_mask" and not mm:
                    continue
                kwargs = prompt_kwargs(case, w, h)
                if case == "point_mask":
                    kwargs["mask_input"] = best_low_res
                masks, ious, low_res = predictor.predict(**kwargs, multimask_output=mm)
                key = f"{variant}/{name}/{case}/mm{int(mm)}"
                pack(out, key, masks > 0)
                out[f"{key}/iou_predictions"] = ious.astype(np.float32)
                if case == "point1" and mm:
                    best_low_res = low_res[int(np.argmax(ious))][None]  # (1, 256, 256)
                    out[f"{key}/low_res_best"] = best_low_res.astype(np.float16)
                print(key, masks.shape, np.round(ious, 4), (masks > 0).mean(axis=(1, 2)))

    variant, model = "sam2.1_hiera_t", models["sam2.1_hiera_t"]
    image = load_rgb("astronaut")
    for run, kwargs in AMG_RUNS.items():
        records = SAM2AutomaticMaskGenerator(model, **kwargs).generate(image)
        key = f"{variant}/astronaut/{run}"
        masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, 512))
        pack(out, key, masks.reshape(len(records), *image.shape[:2]))
        for field in ("area", "bbox", "predicted_iou", "stability_score", "crop_box"):
            out[f"{key}/{field}"] = np.array([r[field] for r in records], dtype=np.float64)
        out[f"{key}/point_coords"] = np.array(
            [r["point_coords"][0] for r in records], dtype=np.float64
        ).reshape(-1, 2)
        print(key, len(records), "masks")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

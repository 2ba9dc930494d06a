"""`SAM2AutomaticMaskGenerator`: segment everything by prompting SAM 2 with a grid of points.

Meta's `sam2.automatic_mask_generator` arguments, defaults (tuned for Hiera-L), filters and
output records, sharing the crop loop, NMS and records with SAM's generator. Less work than
Meta's: the predicted-IoU filter runs on the low-res logits, so only surviving masks are
up-sampled to the image, scored for stability and run-length encoded (a few at a time).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from masktron.models.sam.prompts import check_image
from masktron.predictors.amg_base import GridMaskGenerator
from masktron.predictors.sam2_image import SAM2ImagePredictor, build_pretrained_sam2


class SAM2AutomaticMaskGenerator(GridMaskGenerator):
    """Generate masks for a whole image with SAM 2.

    Args:
        model: a `SAM2Base`, or a `SAM2ImagePredictor` to reuse (its embedding cache included).
        points_per_side: points sampled along each side (points_per_side**2 prompts); exclusive
            with `point_grids`.
        points_per_batch: prompts decoded together (memory vs. speed).
        pred_iou_thresh: keep masks whose predicted IoU exceeds this (filter off when <= 0).
        stability_score_thresh: keep masks whose stability score is at least this (off when <= 0).
        stability_score_offset: logit offset used by the stability score.
        mask_threshold: logit threshold of the binary masks.
        box_nms_thresh: box IoU threshold of the NMS inside a crop.
        crop_n_layers: extra layers of image crops (layer i has (2^i)^2 crops).
        crop_nms_thresh: box IoU threshold of the NMS between crops.
        crop_overlap_ratio: overlap of first-layer crops as a fraction of the short side.
        crop_n_points_downscale_factor: layer i samples points_per_side / factor**i per side.
        point_grids: explicit (n, 2) grids in [0, 1] XY, one per crop layer.
        min_mask_region_area: as in Meta's SAM 2 generator, passed to the predictor as
            `max_hole_area` / `max_sprinkle_area` (holes and islands of the low-res logits;
            Meta's package does that only with its CUDA extension).
        output_mode: "binary_mask", "uncompressed_rle" or "coco_rle".
        use_m2m: refine every candidate once more, with its own low-res logits as mask input
            (one mask per point), before the filters.
        multimask_output: 3 masks per grid point (else 1).
    """

    progress_name = "SAM 2 masks"

    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        super().__init__(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            point_grids=point_grids,
            min_mask_region_area=min_mask_region_area,
            output_mode=output_mode,
        )
        if isinstance(model, SAM2ImagePredictor):
            self.predictor = model
        else:
            self.predictor = SAM2ImagePredictor(
                model,
                max_hole_area=min_mask_region_area,
                max_sprinkle_area=min_mask_region_area,
            )
        self.mask_threshold = mask_threshold
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @classmethod
    def from_pretrained(
        cls, model_id: str, *, device: str | torch.device = "cpu", **kwargs: Any
    ) -> SAM2AutomaticMaskGenerator:
        """A generator of Meta's released weights (`model_id` as
        `SAM2ImagePredictor.from_pretrained`), downloaded once into masktron's cache;
        `**kwargs` are the generator's arguments."""
        return cls(build_pretrained_sam2(model_id, device=device), **kwargs)

    @torch.no_grad()
    def generate(self, image: np.ndarray, *, progress: bool = False) -> list[dict[str, Any]]:
        """Masks of everything in an image.

        Args:
            image: (H, W, 3) uint8 RGB.
            progress: show a progress bar over the point batches.

        Returns:
            One record per mask: `segmentation` ((H, W) bool array or RLE dict, by output mode),
            `area` (int), `bbox` (XYWH list), `predicted_iou` (float), `point_coords` ([[x, y]]),
            `stability_score` (float), `crop_box` (XYWH list).
        """
        check_image(image)
        return self._records(self._generate_masks(image, progress))

    def _set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def _reset_image(self) -> None:
        self.predictor.reset_predictor()

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> dict[str, Any]:
        """Decode one batch of single-point prompts; return the surviving masks as RLE."""
        predictor = self.predictor
        points_t = torch.as_tensor(points, dtype=torch.float32, device=predictor.device)
        in_points = predictor._transforms.transform_coords(points_t, True, im_size)  # (b, 2)
        labels = torch.ones(len(in_points), 1, dtype=torch.int, device=in_points.device)
        low_res, iou_preds = predictor._decode(
            in_points[:, None], labels, None, None, self.multimask_output, -1
        )  # (b, C, 256, 256), (b, C)
        n_masks = low_res.shape[1]
        low_res = low_res.flatten(0, 1)  # (b, C, h, w) -> (b*C, h, w), point-major
        iou_preds = iou_preds.flatten(0, 1)  # (b, C) -> (b*C,)
        points_t = points_t.repeat_interleave(n_masks, dim=0)  # (b*C, 2)
        if self.use_m2m:
            # one more decoder pass per candidate, its clamped logits as the mask prompt
            in_points = predictor._transforms.transform_coords(points_t, True, im_size)
            labels = torch.ones(len(in_points), 1, dtype=torch.int, device=in_points.device)
            mask_input = torch.clamp(low_res, -32.0, 32.0)[:, None]  # (K, 1, 256, 256)
            low_res, iou_preds = predictor._decode(
                in_points[:, None], labels, None, mask_input, False, -1
            )
            low_res, iou_preds = low_res[:, 0], iou_preds[:, 0]
        if self.pred_iou_thresh > 0.0:
            keep = (iou_preds > self.pred_iou_thresh).nonzero()[:, 0]
            low_res, iou_preds, points_t = low_res[keep], iou_preds[keep], points_t[keep]
        transforms = predictor._transforms
        return self._stable_records(
            low_res,
            iou_preds,
            points_t.cpu(),
            lambda x: transforms.postprocess_masks(x, im_size),
            self.mask_threshold,
            crop_box,
            orig_size,
            upsampled_pixels=math.prod(im_size),  # straight to the crop's size
        )

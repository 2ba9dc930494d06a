"""`SamAutomaticMaskGenerator`: segment everything by prompting SAM with a grid of points.

Same parameters, filters and output records as Meta's `segment_anything` generator, computed
with less work: the IoU filter runs on the decoder's IoU head before any mask is decoded, so the
upscaling convolutions run only for prompts with a surviving mask, and only surviving masks are
upsampled to the image, scored for stability and run-length encoded (all batched).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from masktron.models.sam.inplace import Scratch
from masktron.models.sam.prompts import check_image
from masktron.models.sam.sam import Sam
from masktron.predictors.amg_base import (
    OUTPUT_MODES,
    RECORD_KEYS,
    GridMaskGenerator,
    records_from_lists,
)
from masktron.predictors.sam_predictor import SamPredictor

__all__ = ["OUTPUT_MODES", "SamAutomaticMaskGenerator"]


class SamAutomaticMaskGenerator(GridMaskGenerator):
    """Generate masks for a whole image (Meta's parameters and defaults, tuned for ViT-H).

    Args:
        model: a `Sam` model, or a `SamPredictor` to reuse (its embedding cache included).
        points_per_side: points sampled along each side (points_per_side**2 prompts); exclusive
            with `point_grids`.
        points_per_batch: prompts decoded together (memory vs. speed).
        pred_iou_thresh: keep masks whose predicted IoU exceeds this (filter off when <= 0).
        stability_score_thresh: keep masks whose stability score is at least this (off when <= 0).
        stability_score_offset: logit offset used by the stability score.
        box_nms_thresh: box IoU threshold of the NMS inside a crop.
        crop_n_layers: extra layers of image crops (layer i has (2^i)^2 crops).
        crop_nms_thresh: box IoU threshold of the NMS between crops.
        crop_overlap_ratio: overlap of first-layer crops as a fraction of the short side.
        crop_n_points_downscale_factor: layer i samples points_per_side / factor**i per side.
        point_grids: explicit (n, 2) grids in [0, 1] XY, one per crop layer.
        min_mask_region_area: if > 0, fill holes and remove islands smaller than this (pixels).
        output_mode: "binary_mask", "uncompressed_rle" or "coco_rle".
    """

    progress_name = "SAM masks"

    def __init__(
        self,
        model: Sam | SamPredictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
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
        self.predictor = model if isinstance(model, SamPredictor) else SamPredictor(model)
        # The decoder's per-prompt buffers, kept from one batch of points to the next while
        # `generate` runs (each batch would otherwise fault in fresh memory for them).
        self._scratch: Scratch | None = None

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
        self._scratch = Scratch()
        try:
            data = self._generate_masks(image, progress)
        finally:
            self._scratch = None
        if self.min_mask_region_area > 0:
            data = self.postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        return self._records(data)

    def _set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def _reset_image(self) -> None:
        self.predictor.reset_image()

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> dict[str, Any]:
        """Decode one batch of single-point prompts; return the surviving masks as RLE."""
        predictor, model = self.predictor, self.predictor.model
        decoder = model.mask_decoder
        coords = predictor.transform.apply_coords(points, im_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float, device=predictor.device)[:, None]
        labels_t = torch.ones(coords_t.shape[:2], dtype=torch.int, device=coords_t.device)
        sparse, dense = model.prompt_encoder(points=(coords_t, labels_t), boxes=None, masks=None)
        tokens, src = decoder.run_transformer(
            predictor.get_image_embedding(),
            model.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            scratch=self._scratch,
        )
        ids = decoder.output_token_ids(multimask_output=True)
        iou_preds = decoder.predict_iou(tokens)[:, ids]  # (B, M)
        keep = torch.ones_like(iou_preds, dtype=torch.bool)
        if self.pred_iou_thresh > 0.0:
            keep = iou_preds > self.pred_iou_thresh
        prompts = keep.any(dim=1).nonzero()[:, 0]
        if len(prompts) == 0:
            return records_from_lists({k: [] for k in RECORD_KEYS})
        keep = keep[prompts]  # (P, M) for the prompts with at least one surviving mask
        if len(prompts) < len(tokens):
            tokens = tokens[prompts]
            if self._scratch is None:
                src = src[prompts]
            else:  # the kept prompts' image positions go into a buffer kept across batches
                kept = self._scratch.get("kept_src", src.shape, src)[: len(prompts)]
                src = torch.index_select(src, 0, prompts, out=kept)  # (P, h*w, C)
        embedding_hw = predictor.get_image_embedding().shape[-2:]
        # (P, M, 256, 256) -> (K, 256, 256), prompt-major as the IoUs below
        low_res = decoder.masks_from_tokens(tokens, src, ids, embedding_hw)[keep]
        iou_preds = iou_preds[prompts][keep]
        n_masks = len(ids)
        point_idx = prompts[:, None].expand(-1, n_masks)[keep].cpu().numpy()
        all_points = torch.as_tensor(points[point_idx])

        input_size, original_size = predictor.input_sizes[0], predictor.original_sizes[0]
        return self._stable_records(
            low_res,
            iou_preds,
            all_points,
            lambda x: model.postprocess_masks(x, input_size, original_size),
            model.mask_threshold,
            crop_box,
            orig_size,
            # the encoder-input-sized map, then the crop-sized one
            upsampled_pixels=max(model.image_encoder.img_size**2, math.prod(original_size)),
        )

"""`SamAutomaticMaskGenerator`: segment everything by prompting SAM with a grid of points.

Same parameters, filters and output records as Meta's `segment_anything` generator, computed
with less work: the IoU filter runs on the decoder's IoU head before any mask is decoded, so the
upscaling convolutions run only for prompts with a surviving mask, and only surviving masks are
upsampled to the image, scored for stability and run-length encoded (all batched).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms, box_area
from tqdm import tqdm

from masktron.models.sam.prompts import check_image
from masktron.models.sam.sam import Sam
from masktron.predictors.amg_utils import (
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from masktron.predictors.sam_predictor import SamPredictor

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
# Masks upsampled to the image at once (bounds memory: the 1024x1024 intermediate is 4 MiB each).
_UPSAMPLE_CHUNK = 32
_RECORD_KEYS = ("rles", "boxes", "iou_preds", "stability_score", "points")


class SamAutomaticMaskGenerator:
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
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if points_per_side is not None:
            if points_per_side < 1:
                raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            assert point_grids is not None
            self.point_grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
            if len(self.point_grids) < crop_n_layers + 1:
                raise ValueError(
                    f"point_grids has {len(self.point_grids)} grids, crop_n_layers={crop_n_layers} "
                    f"needs {crop_n_layers + 1}"
                )
            for i, grid in enumerate(self.point_grids):
                if grid.ndim != 2 or grid.shape[1] != 2:
                    raise ValueError(f"point_grids[{i}] must be (n, 2) XY, got {grid.shape}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
        self.predictor = model if isinstance(model, SamPredictor) else SamPredictor(model)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode

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
        data = self._generate_masks(image, progress)
        if self.min_mask_region_area > 0:
            data = self.postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        rles = data["rles"]
        if self.output_mode == "coco_rle":
            segmentations: list[Any] = [coco_encode_rle(r) for r in rles]
        elif self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(r) for r in rles]
        else:
            segmentations = rles
        boxes = box_xyxy_to_xywh(data["boxes"]).tolist()
        crop_boxes = box_xyxy_to_xywh(data["crop_boxes"]).tolist()
        points = data["points"].tolist()
        ious = data["iou_preds"].tolist()
        stability = data["stability_score"].tolist()
        return [
            {
                "segmentation": segmentations[i],
                "area": area_from_rle(rles[i]),
                "bbox": boxes[i],
                "predicted_iou": ious[i],
                "point_coords": [points[i]],
                "stability_score": stability[i],
                "crop_box": crop_boxes[i],
            }
            for i in range(len(rles))
        ]

    def _generate_masks(self, image: np.ndarray, progress: bool) -> dict[str, Any]:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            orig_size, self.crop_n_layers, self.crop_overlap_ratio
        )
        total = sum(
            -(-len(self.point_grids[layer]) // self.points_per_batch) for layer in layer_idxs
        )
        bar = tqdm(total=total, desc="SAM masks", unit="batch", disable=not progress)
        parts = [
            self._process_crop(image, crop_box, layer, orig_size, bar)
            for crop_box, layer in zip(crop_boxes, layer_idxs)
        ]
        bar.close()
        data = _cat(parts)
        if len(crop_boxes) > 1 and len(data["rles"]):
            # Between crops, prefer masks from smaller crops (more zoomed in).
            scores = 1 / box_area(data["crop_boxes"].float())
            keep = batched_nms(
                data["boxes"].float(),
                scores,
                torch.zeros(len(scores), dtype=torch.int64),
                iou_threshold=self.crop_nms_thresh,
            )
            data = _select(data, keep)
        return data

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        layer: int,
        orig_size: tuple[int, ...],
        bar: tqdm,
    ) -> dict[str, Any]:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = crop.shape[:2]
        self.predictor.set_image(crop)
        scale = np.array(crop_size, dtype=np.float64)[None, ::-1]  # (1, 2) as (W, H)
        points_for_image = self.point_grids[layer] * scale
        parts = []
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            parts.append(self._process_batch(points, crop_size, crop_box, orig_size))
            bar.update(1)
        self.predictor.reset_image()
        data = _cat(parts)
        keep = batched_nms(
            data["boxes"].float(),
            data["iou_preds"],
            torch.zeros(len(data["boxes"]), dtype=torch.int64),
            iou_threshold=self.box_nms_thresh,
        )
        data = _select(data, keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box], dtype=torch.int64).repeat(len(keep), 1)
        return data

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
        orig_h, orig_w = orig_size
        coords = predictor.transform.apply_coords(points, im_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float, device=predictor.device)[:, None]
        labels_t = torch.ones(coords_t.shape[:2], dtype=torch.int, device=coords_t.device)
        sparse, dense = model.prompt_encoder(points=(coords_t, labels_t), boxes=None, masks=None)
        tokens, src = decoder.run_transformer(
            predictor.get_image_embedding(), model.prompt_encoder.get_dense_pe(), sparse, dense
        )
        ids = decoder.output_token_ids(multimask_output=True)
        iou_preds = decoder.predict_iou(tokens)[:, ids]  # (B, M)
        keep = torch.ones_like(iou_preds, dtype=torch.bool)
        if self.pred_iou_thresh > 0.0:
            keep = iou_preds > self.pred_iou_thresh
        prompts = keep.any(dim=1).nonzero()[:, 0]
        if len(prompts) == 0:
            return _cat_lists({k: [] for k in _RECORD_KEYS})
        keep = keep[prompts]  # (P, M) for the prompts with at least one surviving mask
        if len(prompts) < len(tokens):
            tokens, src = tokens[prompts], src[prompts]
        embedding_hw = predictor.get_image_embedding().shape[-2:]
        # (P, M, 256, 256) -> (K, 256, 256), prompt-major as the IoUs below
        low_res = decoder.masks_from_tokens(tokens, src, ids, embedding_hw)[keep]
        iou_preds = iou_preds[prompts][keep]
        n_masks = len(ids)
        point_idx = prompts[:, None].expand(-1, n_masks)[keep].cpu().numpy()
        all_points = torch.as_tensor(points[point_idx])

        out: dict[str, list[Any]] = {k: [] for k in _RECORD_KEYS}
        for start in range(0, len(low_res), _UPSAMPLE_CHUNK):
            part = slice(start, start + _UPSAMPLE_CHUNK)
            logits = model.postprocess_masks(
                low_res[part, None], predictor.input_sizes[0], predictor.original_sizes[0]
            )[:, 0]  # (k, h, w) logits at the crop's size
            stability = calculate_stability_score(
                logits, model.mask_threshold, self.stability_score_offset
            )
            chosen = torch.ones_like(stability, dtype=torch.bool)
            if self.stability_score_thresh > 0.0:
                chosen = stability >= self.stability_score_thresh
            masks = logits[chosen] > model.mask_threshold
            del logits
            boxes = batched_mask_to_box(masks)
            inside = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
            masks, boxes = masks[inside], boxes[inside]
            idx = chosen.nonzero()[:, 0][inside]
            out["rles"].extend(mask_to_rle_pytorch(uncrop_masks(masks, crop_box, orig_h, orig_w)))
            out["boxes"].append(boxes)
            out["iou_preds"].append(iou_preds[part][idx])
            out["stability_score"].append(stability[idx])
            out["points"].append(all_points[part][idx.cpu()])
        return _cat_lists(out)

    @staticmethod
    def postprocess_small_regions(
        mask_data: dict[str, Any], min_area: int, nms_thresh: float
    ) -> dict[str, Any]:
        """Fill small holes and remove small islands of every mask, then NMS again.

        Masks left unchanged are preferred by the NMS (score 1 vs 0), as in Meta's generator.
        """
        rles = mask_data["rles"]
        if len(rles) == 0:
            return mask_data
        new_masks, scores = [], []
        for rle in rles:
            mask = rle_to_mask(rle)
            mask, changed_holes = remove_small_regions(mask, min_area, mode="holes")
            mask, changed_islands = remove_small_regions(mask, min_area, mode="islands")
            new_masks.append(torch.as_tensor(mask))
            scores.append(float(not (changed_holes or changed_islands)))
        masks = torch.stack(new_masks)
        boxes = batched_mask_to_box(masks)
        keep = batched_nms(
            boxes.float(),
            torch.as_tensor(scores),
            torch.zeros(len(boxes), dtype=torch.int64),
            iou_threshold=nms_thresh,
        )
        rles = list(rles)
        mask_data["boxes"] = mask_data["boxes"].clone()
        for i in keep.tolist():
            if scores[i] == 0.0:
                rles[i] = mask_to_rle_pytorch(masks[i : i + 1])[0]
                mask_data["boxes"][i] = boxes[i]
        mask_data["rles"] = rles
        return _select(mask_data, keep)


def _cat_lists(parts: dict[str, list[Any]]) -> dict[str, Any]:
    """One batch's records, as CPU tensors (small; NMS and bookkeeping run there)."""
    out: dict[str, Any] = {"rles": parts["rles"]}
    for key in ("boxes", "iou_preds", "stability_score", "points"):
        out[key] = torch.cat(parts[key]).cpu() if parts[key] else torch.zeros(0)
    if not parts["boxes"]:
        out["boxes"] = torch.zeros(0, 4, dtype=torch.int64)
        out["points"] = torch.zeros(0, 2, dtype=torch.float64)
    return out


def _cat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-batch (or per-crop) records, keeping their order."""
    out: dict[str, Any] = {"rles": [r for p in parts for r in p["rles"]]}
    for key in parts[0]:
        if key != "rles":
            out[key] = torch.cat([p[key] for p in parts])
    return out


def _select(data: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Records at the indexes `keep`, in that order."""
    idx = keep.tolist()
    out = {k: v[keep] for k, v in data.items() if k != "rles"}
    out["rles"] = [data["rles"][i] for i in idx]
    return out

"""What SAM's and SAM 2's automatic mask generators share: point grids over crop layers, the
crop loop, NMS within and between crops, small-region post-processing and the output records.

A subclass holds its predictor and says how to embed a crop (`_set_image`, `_reset_image`) and
how to turn a batch of grid points into surviving masks (`_process_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms, box_area
from tqdm import tqdm

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

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
RECORD_KEYS = ("rles", "boxes", "iou_preds", "stability_score", "points")
# Largest float32 maps upsampled at once (bytes), e.g. 4 masks' 1024x1024 SAM intermediates.
# Besides bounding memory, blocks under glibc's 32 MiB mmap threshold reuse heap memory instead
# of fresh mappings faulted in on every use: 16 MiB blocks ran SAM's generator on a 512x512
# image (32 points/side, fixture weights) in 21.2 s instead of 23.5 s with 32-mask blocks
# (2 threads, 2026-12-07), with identical records (every mask is upsampled on its own).
_UPSAMPLE_BLOCK_BYTES = 16 * 2**20


class GridMaskGenerator:
    """Base of the automatic mask generators (arguments as Meta's, see the subclasses)."""

    progress_name = "masks"

    def __init__(
        self,
        *,
        points_per_side: int | None,
        points_per_batch: int,
        pred_iou_thresh: float,
        stability_score_thresh: float,
        stability_score_offset: float,
        box_nms_thresh: float,
        crop_n_layers: int,
        crop_nms_thresh: float,
        crop_overlap_ratio: float,
        crop_n_points_downscale_factor: int,
        point_grids: list[np.ndarray] | None,
        min_mask_region_area: int,
        output_mode: str,
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

    # ------------------------------------------------------------ subclass hooks
    def _set_image(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def _reset_image(self) -> None:
        raise NotImplementedError

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> dict[str, Any]:
        """(b, 2) XY grid points of a crop (crop pixels) -> surviving masks' records."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared
    def _records(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Mask data -> one record per mask: `segmentation` ((H, W) bool array or RLE dict, by
        output mode), `area` (int), `bbox` (XYWH list), `predicted_iou` (float), `point_coords`
        ([[x, y]]), `stability_score` (float), `crop_box` (XYWH list)."""
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
        bar = tqdm(total=total, desc=self.progress_name, unit="batch", disable=not progress)
        parts = [
            self._process_crop(image, crop_box, layer, orig_size, bar)
            for crop_box, layer in zip(crop_boxes, layer_idxs)
        ]
        bar.close()
        data = cat_records(parts)
        if len(crop_boxes) > 1 and len(data["rles"]):
            # Between crops, prefer masks from smaller crops (more zoomed in).
            scores = 1 / box_area(data["crop_boxes"].float())
            keep = batched_nms(
                data["boxes"].float(),
                scores,
                torch.zeros(len(scores), dtype=torch.int64),
                iou_threshold=self.crop_nms_thresh,
            )
            data = select_records(data, keep)
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
        self._set_image(crop)
        scale = np.array(crop_size, dtype=np.float64)[None, ::-1]  # (1, 2) as (W, H)
        points_for_image = self.point_grids[layer] * scale
        parts = []
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            parts.append(self._process_batch(points, crop_size, crop_box, orig_size))
            bar.update(1)
        self._reset_image()
        data = cat_records(parts)
        keep = batched_nms(
            data["boxes"].float(),
            data["iou_preds"],
            torch.zeros(len(data["boxes"]), dtype=torch.int64),
            iou_threshold=self.box_nms_thresh,
        )
        data = select_records(data, keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box], dtype=torch.int64).repeat(len(keep), 1)
        return data

    def _stable_records(
        self,
        low_res: torch.Tensor,
        iou_preds: torch.Tensor,
        points: torch.Tensor,
        upsample: Callable[[torch.Tensor], torch.Tensor],
        mask_threshold: float,
        crop_box: list[int],
        orig_size: tuple[int, ...],
        *,
        upsampled_pixels: int,
    ) -> dict[str, Any]:
        """Masks that passed the IoU filter -> the records of those that also pass the stability
        filter and do not touch an inner crop edge, as RLE in the full image.

        Args:
            low_res: (K, h, w) low-res logits; iou_preds: (K,); points: (K, 2) XY crop pixels.
            upsample: (k, 1, h, w) low-res logits -> (k, 1, H_crop, W_crop) logits.
            mask_threshold: logit threshold of the binary masks.
            upsampled_pixels: pixels per mask of the largest map `upsample` makes (it sizes
                the blocks of masks upsampled at once).
        """
        orig_h, orig_w = orig_size
        out: dict[str, list[Any]] = {k: [] for k in RECORD_KEYS}
        step = max(1, _UPSAMPLE_BLOCK_BYTES // (4 * upsampled_pixels))
        for start in range(0, len(low_res), step):
            part = slice(start, start + step)
            logits = upsample(low_res[part, None])[:, 0]  # (k, h, w) logits at the crop's size
            stability = calculate_stability_score(
                logits, mask_threshold, self.stability_score_offset
            )
            chosen = torch.ones_like(stability, dtype=torch.bool)
            if self.stability_score_thresh > 0.0:
                chosen = stability >= self.stability_score_thresh
            masks = logits[chosen] > mask_threshold
            del logits
            boxes = batched_mask_to_box(masks)
            inside = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
            masks, boxes = masks[inside], boxes[inside]
            idx = chosen.nonzero()[:, 0][inside]
            out["rles"].extend(mask_to_rle_pytorch(uncrop_masks(masks, crop_box, orig_h, orig_w)))
            out["boxes"].append(boxes)
            out["iou_preds"].append(iou_preds[part][idx])
            out["stability_score"].append(stability[idx])
            out["points"].append(points[part][idx.cpu()])
        return records_from_lists(out)

    @staticmethod
    def postprocess_small_regions(
        mask_data: dict[str, Any], min_area: int, nms_thresh: float
    ) -> dict[str, Any]:
        """Fill small holes and remove small islands of every mask, then NMS again.

        Masks left unchanged are preferred by the NMS (score 1 vs 0), as in Meta's generators.
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
        return select_records(mask_data, keep)


def records_from_lists(parts: dict[str, list[Any]]) -> dict[str, Any]:
    """One batch's records (lists per `RECORD_KEYS`) as CPU tensors (NMS and bookkeeping run
    there)."""
    out: dict[str, Any] = {"rles": parts["rles"]}
    for key in ("boxes", "iou_preds", "stability_score", "points"):
        out[key] = torch.cat(parts[key]).cpu() if parts[key] else torch.zeros(0)
    if not parts["boxes"]:
        out["boxes"] = torch.zeros(0, 4, dtype=torch.int64)
        out["points"] = torch.zeros(0, 2, dtype=torch.float64)
    return out


def cat_records(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-batch (or per-crop) records, keeping their order."""
    out: dict[str, Any] = {"rles": [r for p in parts for r in p["rles"]]}
    for key in parts[0]:
        if key != "rles":
            out[key] = torch.cat([p[key] for p in parts])
    return out


def select_records(data: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Records at the indexes `keep`, in that order."""
    idx = keep.tolist()
    out = {k: v[keep] for k, v in data.items() if k != "rles"}
    out["rles"] = [data["rles"][i] for i in idx]
    return out

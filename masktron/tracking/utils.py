"""Pairing helpers shared by the trackers: box and mask IoU between two frames' instances.

`create_prediction_pairs` and `LARGE_COST_VALUE` keep Detectron2's names (`detectron2.tracking.
utils`), so code that builds its own cost matrices ports unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from masktron.structures import Boxes, Instances, pairwise_iou

__all__ = [
    "LARGE_COST_VALUE",
    "MATCH_METRICS",
    "create_prediction_pairs",
    "instance_iou",
    "pairwise_mask_iou",
]

# The cost of a pair that must not be matched (Detectron2's value): far above any real cost.
LARGE_COST_VALUE = 100000
MATCH_METRICS = ("box", "mask")


def _as_boxes(boxes: Any) -> Boxes:
    if isinstance(boxes, Boxes):
        return boxes
    return Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4))


def _mask_tensor(masks: Any) -> torch.Tensor:
    """(N, H, W) bool from a tensor, an array or anything with `.tensor` (BitMasks)."""
    masks = getattr(masks, "tensor", masks)
    masks = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    return masks.cpu() > 0.5 if masks.is_floating_point() else masks.cpu().bool()


def _mask_extents(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 4) int64 x0, y0, x1, y1 (end exclusive) of each mask; 0s if empty."""
    rows: np.ndarray = np.any(masks, axis=2)  # (N, H)
    cols: np.ndarray = np.any(masks, axis=1)  # (N, W)
    h, w = masks.shape[1:]
    extents = np.stack(
        [
            cols.argmax(axis=1),
            rows.argmax(axis=1),
            w - cols[:, ::-1].argmax(axis=1),
            h - rows[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    ).astype(np.int64)
    extents[~np.any(rows, axis=1)] = 0
    return extents


def pairwise_mask_iou(masks1: Any, masks2: Any) -> torch.Tensor:
    """Intersection over union of every pair of binary masks.

    Intersections are counted only where two masks' extents overlap, on that overlap alone: in
    a video frame most pairs of objects are apart, so this costs far less than comparing whole
    frames. (NumPy, not torch: its boolean reductions are about 10x faster on a CPU.)

    Args:
        masks1: (N, H, W) bool, 0/1 or probability masks (thresholded at 0.5).
        masks2: (M, H, W), the same frame size.

    Returns:
        (N, M) float32 IoU; 0 where both masks are empty.
    """
    a, b = _mask_tensor(masks1).numpy(), _mask_tensor(masks2).numpy()
    if a.shape[1:] != b.shape[1:]:
        shapes = f"{tuple(a.shape)} and {tuple(b.shape)}"
        raise ValueError(f"mask IoU needs masks of one frame size, got {shapes}")
    area_a = np.count_nonzero(a.reshape(len(a), -1), axis=1)  # (N, H, W) -> (N, H*W) -> (N,)
    area_b = np.count_nonzero(b.reshape(len(b), -1), axis=1)  # (M,)
    ext_a, ext_b = _mask_extents(a), _mask_extents(b)
    lt = np.maximum(ext_a[:, None, :2], ext_b[None, :, :2])  # (N, M, 2) overlap's top-left
    rb = np.minimum(ext_a[:, None, 2:], ext_b[None, :, 2:])  # (N, M, 2) and bottom-right
    inter = np.zeros((len(a), len(b)), dtype=np.float64)
    for i, j in zip(*np.nonzero((rb > lt).all(axis=2))):
        (x0, y0), (x1, y1) = lt[i, j], rb[i, j]
        inter[i, j] = np.count_nonzero(a[i, y0:y1, x0:x1] & b[j, y0:y1, x0:x1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return torch.from_numpy(iou.astype(np.float32))


def instance_iou(
    instances: Instances, prev_instances: Instances, metric: str = "box"
) -> np.ndarray:
    """(N, M) IoU between the current frame's instances and the previous frame's.

    Args:
        instances: N instances with `pred_boxes` (XYXY pixels), and `pred_masks` for "mask".
        prev_instances: M instances of the previous frame, same fields.
        metric: "box" (box IoU, Detectron2's trackers) or "mask" (mask IoU: better for touching
            or overlapping objects whose boxes overlap a lot).
    """
    if metric not in MATCH_METRICS:
        raise ValueError(f"match metric must be one of {MATCH_METRICS}, got {metric!r}")
    n, m = len(instances), len(prev_instances)
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=np.float32)
    if metric == "mask":
        if not (instances.has("pred_masks") and prev_instances.has("pred_masks")):
            raise ValueError("match metric 'mask' needs instances with pred_masks")
        return pairwise_mask_iou(instances.pred_masks, prev_instances.pred_masks).numpy()
    iou = pairwise_iou(_as_boxes(instances.pred_boxes), _as_boxes(prev_instances.pred_boxes))
    return iou.detach().cpu().numpy()


def create_prediction_pairs(
    instances: Instances, prev_instances: Instances, iou_all: np.ndarray, threshold: float = 0.5
) -> list[dict[str, Any]]:
    """Every (current, previous) pair whose IoU reaches `threshold`, current index major.

    Args:
        instances: the current frame's N instances.
        prev_instances: the previous frame's M instances, with `ID` and `ID_period`.
        iou_all: (N, M) IoU.
        threshold: pairs below it are left out.

    Returns:
        dicts with `idx`, `prev_idx`, `prev_id`, `IoU`, `prev_period` (Detectron2's keys).
    """
    pairs = []
    for i in range(len(instances)):
        for j in range(len(prev_instances)):
            if iou_all[i, j] < threshold:
                continue
            pairs.append(
                {
                    "idx": i,
                    "prev_idx": j,
                    "prev_id": prev_instances.ID[j],
                    "IoU": float(iou_all[i, j]),
                    "prev_period": prev_instances.ID_period[j],
                }
            )
    return pairs

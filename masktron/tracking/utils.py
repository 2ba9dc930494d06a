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


def pairwise_mask_iou(masks1: Any, masks2: Any) -> torch.Tensor:
    """Intersection over union of every pair of binary masks.

    Args:
        masks1: (N, H, W) bool, 0/1 or probability masks (thresholded at 0.5).
        masks2: (M, H, W), the same frame size.

    Returns:
        (N, M) float32 IoU; 0 where both masks are empty.
    """
    a, b = _mask_tensor(masks1), _mask_tensor(masks2)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"mask IoU needs one frame size, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a2 = a.reshape(a.shape[0], -1).float()  # (N, H, W) -> (N, H*W)
    b2 = b.reshape(b.shape[0], -1).float()  # (M, H, W) -> (M, H*W)
    inter = a2 @ b2.T  # (N, M)
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


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

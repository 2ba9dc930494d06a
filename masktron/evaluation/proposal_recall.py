"""Average recall of box proposals (AR@100, AR@1000 by object size), as Detectron2 reports it.

Detectron2's definition (from Detectron's `json_dataset_evaluator`), not the COCO API's: per
image, proposals sorted by objectness and cut at the limit are matched greedily to the
non-crowd ground-truth boxes, best-covered box first, one proposal per box; the recall at an IoU
threshold is the fraction of all ground-truth boxes in the area range (COCO `area` field, i.e.
the segment's area) covered at that IoU; AR averages the thresholds 0.5:0.05:0.95. Images
without proposals or without non-crowd ground truth are skipped (their boxes are not counted),
as in Detectron2. With no ground-truth box in a range at all, AR is 0 (Detectron2: NaN).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from masktron.structures import Boxes, pairwise_iou

__all__ = ["AREA_RANGES", "box_proposal_metrics", "evaluate_box_proposals"]

# name -> (min, max) of the ground truth's `area`, pixels squared (COCO's ranges)
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
_SUFFIX = {"all": "", "small": "s", "medium": "m", "large": "l"}


def _best_coverage(overlaps: torch.Tensor) -> torch.Tensor:
    """(P, G) IoUs -> (G,) IoU at which each gt box is covered by greedy one-to-one matching:
    repeatedly take the best-covered remaining box, record its IoU, and retire the pair."""
    overlaps = overlaps.clone()
    num_gt = overlaps.shape[1]
    covered = torch.zeros(num_gt)
    for j in range(min(overlaps.shape[0], num_gt)):
        best_per_gt, best_proposal = overlaps.max(dim=0)  # (G,), (G,)
        iou, gt_index = best_per_gt.max(dim=0)
        covered[j] = iou
        overlaps[best_proposal[gt_index], :] = -1
        overlaps[:, gt_index] = -1
    return covered


def evaluate_box_proposals(
    predictions: Sequence[dict[str, Any]],
    gt_dataset: dict[str, Any],
    *,
    area: str = "all",
    limit: int | None = None,
    thresholds: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Proposal recall over a dataset.

    Args:
        predictions: one dict per image: `image_id`, `boxes` ((P, 4) XYXY in original-image
            pixels) and `objectness_logits` ((P,)).
        gt_dataset: a COCO instances dataset (`annotations` with `image_id`, `bbox` XYWH,
            `area`, `iscrowd`).
        area: "all", "small", "medium" or "large".
        limit: proposals kept per image (the highest objectness first); None keeps all.
        thresholds: IoU thresholds (default 0.5:0.05:0.95).

    Returns:
        `ar` (float, 0..1), `recalls` (T,), `thresholds` (T,), `gt_overlaps` (sorted IoU of every
        counted gt box) and `num_pos` (gt boxes counted).
    """
    if area not in AREA_RANGES:
        raise ValueError(f"area must be one of {sorted(AREA_RANGES)}, got {area!r}")
    low, high = AREA_RANGES[area]
    anns_by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in gt_dataset.get("annotations", []):
        if not ann.get("iscrowd", 0):
            anns_by_image[ann["image_id"]].append(ann)
    overlaps_all, num_pos = [], 0
    for pred in predictions:
        anns = anns_by_image.get(pred["image_id"], [])
        boxes = torch.as_tensor(np.asarray(pred["boxes"], dtype=np.float32)).reshape(-1, 4)
        logits = torch.as_tensor(np.asarray(pred["objectness_logits"], dtype=np.float32))
        if not anns or len(boxes) == 0:
            continue
        gt = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        gt[:, 2:] += gt[:, :2]  # XYWH -> XYXY
        areas = torch.tensor([float(a["area"]) for a in anns])
        gt = gt[(areas >= low) & (areas <= high)]
        num_pos += len(gt)
        if len(gt) == 0:
            continue
        order = torch.sort(logits, descending=True).indices[:limit]
        overlaps = pairwise_iou(Boxes(boxes[order]), Boxes(gt))  # (P, G)
        overlaps_all.append(_best_coverage(overlaps))
    gt_overlaps = torch.sort(torch.cat(overlaps_all) if overlaps_all else torch.zeros(0)).values
    if thresholds is None:
        thresholds = torch.arange(0.5, 0.95 + 1e-5, 0.05, dtype=torch.float32)
    recalls = torch.stack([(gt_overlaps >= t).float().sum() / max(num_pos, 1) for t in thresholds])
    return {
        "ar": float(recalls.mean()),
        "recalls": recalls,
        "thresholds": thresholds,
        "gt_overlaps": gt_overlaps,
        "num_pos": num_pos,
    }


def box_proposal_metrics(
    predictions: Sequence[dict[str, Any]], gt_dataset: dict[str, Any]
) -> dict[str, float]:
    """Detectron2's `box_proposals` results: AR@100, ARs@100, ARm@100, ARl@100 and the same at
    1000, in percent."""
    return {
        f"AR{_SUFFIX[area]}@{limit}": 100.0
        * evaluate_box_proposals(predictions, gt_dataset, area=area, limit=limit)["ar"]
        for limit in (100, 1000)
        for area in AREA_RANGES
    }

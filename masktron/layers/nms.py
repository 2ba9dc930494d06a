"""Non-maximum suppression, per class or per level, by torchvision's kernels, and the size
of a top-k that a traced (ONNX-exported) graph computes at run time."""

from __future__ import annotations

from typing import cast

import torch
from torchvision.ops import boxes as box_ops


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS run independently within each group of `idxs` (a class or a feature level).

    Args:
        boxes: (N, 4) XYXY.
        scores: (N,).
        idxs: (N,) int group of each box; boxes of different groups never suppress each other.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scoring box of the
            same group is greater than this.

    Returns:
        int64 indices of the kept boxes, by decreasing score.
    """
    if boxes.shape[-1] != 4:
        raise ValueError(f"batched_nms needs (N, 4) boxes, got {tuple(boxes.shape)}")
    return box_ops.batched_nms(boxes.float(), scores.float(), idxs, iou_threshold)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Plain NMS over all boxes; indices of kept boxes by decreasing score."""
    return box_ops.nms(boxes.float(), scores.float(), iou_threshold)


def topk_size(n: int, k: int) -> int:
    """`min(n, k)`, the number of elements a top-k keeps out of `n`.

    While tracing for ONNX export `n` is a traced size, and the minimum becomes part of the
    graph (a fixed-size top-k would fail on images with fewer than `k` candidates).
    """
    if torch.jit.is_tracing():
        return cast(int, torch.clamp(torch.as_tensor(n), max=k))
    return min(int(n), k)

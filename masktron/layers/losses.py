"""Box regression losses shared by RPN, RetinaNet and the RoI box head."""

from __future__ import annotations

import torch
from torchvision.ops import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)

__all__ = ["ciou_loss", "diou_loss", "giou_loss", "sigmoid_focal_loss", "smooth_l1_loss"]


def smooth_l1_loss(
    input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "sum"
) -> torch.Tensor:
    """Huber-style loss: quadratic below `beta`, linear above; beta < 1e-5 is plain L1."""
    diff = torch.abs(input - target)
    if beta < 1e-5:
        loss = diff
    else:
        loss = torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def giou_loss(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """1 - generalised IoU (Rezatofighi et al., 2019) between paired (N, 4) XYXY boxes."""
    if boxes1.numel() == 0:
        return boxes1.sum() * 0.0
    return generalized_box_iou_loss(boxes1, boxes2, reduction=reduction)


def diou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Distance-IoU loss (Zheng et al., 2020) between paired (N, 4) XYXY boxes: 1 - IoU plus
    the squared centre distance over the squared diagonal of the enclosing box (torchvision's
    `distance_box_iou_loss`; Detectron2's signature and default reduction)."""
    if boxes1.numel() == 0:
        return boxes1.sum() * 0.0 if reduction != "none" else boxes1.sum(-1) * 0.0
    return distance_box_iou_loss(boxes1, boxes2, reduction=reduction, eps=eps)


def ciou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Complete-IoU loss: the DIoU loss plus an aspect-ratio consistency term (torchvision's
    `complete_box_iou_loss`; Detectron2's signature and default reduction)."""
    if boxes1.numel() == 0:
        return boxes1.sum() * 0.0 if reduction != "none" else boxes1.sum(-1) * 0.0
    return complete_box_iou_loss(boxes1, boxes2, reduction=reduction, eps=eps)

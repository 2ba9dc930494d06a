"""Box regression targets: the (dx, dy, dw, dh) parameterisation of R-CNN (Girshick et al.)."""

from __future__ import annotations

import math

import torch

# Largest log-scale a predicted box may grow by: boxes at most 1000/16 times their anchor.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class Box2BoxTransform:
    """Encode a target box relative to a source box, and decode deltas back to boxes.

    `dx = wx * (tx - sx) / sw`, `dy = wy * (ty - sy) / sh`, `dw = ww * log(tw / sw)`,
    `dh = wh * log(th / sh)` with centres (x, y) and sizes (w, h).

    Args:
        weights: (wx, wy, ww, wh) scales of the deltas: (1, 1, 1, 1) for RPN and RetinaNet,
            (10, 10, 5, 5) for the RoI box head.
        scale_clamp: dw and dh are clamped at this before `exp` when decoding.
    """

    def __init__(
        self,
        weights: tuple[float, float, float, float],
        scale_clamp: float = DEFAULT_SCALE_CLAMP,
    ):
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """(N, 4) XYXY sources and targets -> (N, 4) deltas moving each source onto its target."""
        src_w = src_boxes[:, 2] - src_boxes[:, 0]
        src_h = src_boxes[:, 3] - src_boxes[:, 1]
        src_x = src_boxes[:, 0] + 0.5 * src_w
        src_y = src_boxes[:, 1] + 0.5 * src_h
        tgt_w = target_boxes[:, 2] - target_boxes[:, 0]
        tgt_h = target_boxes[:, 3] - target_boxes[:, 1]
        tgt_x = target_boxes[:, 0] + 0.5 * tgt_w
        tgt_y = target_boxes[:, 1] + 0.5 * tgt_h
        wx, wy, ww, wh = self.weights
        dx = wx * (tgt_x - src_x) / src_w
        dy = wy * (tgt_y - src_y) / src_h
        dw = ww * torch.log(tgt_w / src_w)
        dh = wh * torch.log(tgt_h / src_h)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode deltas against boxes.

        Args:
            deltas: (N, K*4): K boxes per source box (e.g. one per class).
            boxes: (N, 4) XYXY source boxes.

        Returns:
            (N, K*4) XYXY decoded boxes, in float32 or wider.
        """
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        x0 = pred_ctr_x - 0.5 * pred_w
        y0 = pred_ctr_y - 0.5 * pred_h
        x1 = pred_ctr_x + 0.5 * pred_w
        y1 = pred_ctr_y + 0.5 * pred_h
        pred = torch.stack((x0, y0, x1, y1), dim=-1)  # (N, K, 4)
        return pred.reshape(deltas.shape)  # (N, K, 4) -> (N, K*4)

"""The RoI box head: pooled features -> class scores and per-class box deltas, plus its
inference (score threshold, per-class NMS, top-k) and its losses (Fast R-CNN, Girshick 2015)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from masktron.config.configurable import configurable
from masktron.layers import (
    ShapeSpec,
    batched_nms,
    c2_msra_fill,
    c2_xavier_fill,
    conv3x3_norm_relu,
)
from masktron.layers.losses import giou_loss, smooth_l1_loss
from masktron.models.box_coder import Box2BoxTransform
from masktron.structures import Boxes, Instances


class FastRCNNConvFCHead(nn.Module):
    """`conv1..convK` (3x3, norm, ReLU) then `fc1..fcM` (ReLU) on (R, C, S, S) pooled features.

    Args:
        input_shape: channels and pooled size of the input.
        conv_dims: output channels of each conv.
        fc_dims: output size of each fully connected layer.
        conv_norm: norm name for the convs ("" = none).
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        conv_dims: list[int],
        fc_dims: list[int],
        conv_norm: str = "",
    ):
        super().__init__()
        channels, h, w = input_shape.channels, input_shape.height, input_shape.width
        if channels is None:
            raise ValueError("FastRCNNConvFCHead needs input_shape.channels")
        self.conv_norm_relus: list[nn.Module] = []
        # All layers are created, then initialized (convs, then fcs), in Detectron2's order:
        # the same seed gives the same weights.
        for k, dim in enumerate(conv_dims):
            conv = conv3x3_norm_relu(channels, dim, conv_norm, msra_init=False)
            self.add_module(f"conv{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            channels = dim
        self.fcs: list[nn.Module] = []
        size = channels * (h or 1) * (w or 1)
        for k, dim in enumerate(fc_dims):
            fc = nn.Linear(size, dim)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            size = dim
        for layer in self.conv_norm_relus:
            c2_msra_fill(layer)
        for layer in self.fcs:
            c2_xavier_fill(layer)
        self._output_size = size if fc_dims else channels * (h or 1) * (w or 1)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        """Detectron2's `FastRCNNConvFCHead(cfg, input_shape)`: arguments read from the config."""
        from masktron.models.build import box_head_kwargs

        return box_head_kwargs(cfg, input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.conv_norm_relus:
            x = conv(x)
        if self.fcs:
            x = torch.flatten(x, start_dim=1)  # (R, C, S, S) -> (R, C*S*S)
            for fc in self.fcs:
                x = F.relu(fc(x))
        return x

    @property
    def output_shape(self) -> ShapeSpec:
        return ShapeSpec(channels=self._output_size)


def fast_rcnn_inference(
    boxes: list[torch.Tensor],
    scores: list[torch.Tensor],
    image_shapes: list[tuple[int, int]],
    *,
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Detections from per-image class scores and boxes.

    Args:
        boxes: per image (R, K*4) class-specific boxes (or (R, 4) class-agnostic), XYXY.
        scores: per image (R, K+1) probabilities, background last.
        image_shapes: (height, width) to clip boxes to.

    Returns:
        as Detectron2's: per image, Instances with `pred_boxes`, `scores`, `pred_classes`,
        best first; and per image the (D,) index of the proposal (row of `boxes`, after rows
        with non-finite values are dropped) that each detection comes from.
    """
    results = [
        _inference_single_image(b, s, shape, score_thresh, nms_thresh, topk_per_image)
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def _inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk: int,
) -> tuple[Instances, torch.Tensor]:
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if torch.jit.is_tracing() or not valid.all():  # traced: the filter goes into the graph
        boxes, scores = boxes[valid], scores[valid]
    scores = scores[:, :-1]  # drop background
    num_reg = boxes.shape[1] // 4
    clipped = Boxes(boxes.reshape(-1, 4))  # (R, K*4) -> (R*K, 4)
    clipped.clip(image_shape)
    boxes = clipped.tensor.view(-1, num_reg, 4)  # (R*K, 4) -> (R, K, 4)
    keep_mask = scores > score_thresh  # (R, K)
    idx = keep_mask.nonzero()  # (D, 2): proposal, class
    boxes = boxes[idx[:, 0], 0] if num_reg == 1 else boxes[keep_mask]
    scores = scores[keep_mask]
    keep = batched_nms(boxes, scores, idx[:, 1], nms_thresh)
    if topk >= 0:
        keep = keep[:topk]
    result = Instances(image_shape)
    result.pred_boxes = Boxes(boxes[keep])
    result.scores = scores[keep]
    result.pred_classes = idx[keep, 1]
    return result, idx[keep, 0]


def split_per_image(x: torch.Tensor, instances: list[Instances]) -> list[torch.Tensor]:
    """Rows of all images -> one tensor per image (`len(instances[i])` rows each).

    One image keeps `x` whole: the split sizes would be constants in a traced (ONNX) graph.
    """
    if len(instances) == 1:
        return [x]
    return list(x.split([len(i) for i in instances]))


class FastRCNNOutputLayers(nn.Module):
    """`cls_score` (K+1 logits, background last) and `bbox_pred` (K*4 or 4 deltas) linear layers.

    Also built as Detectron2's `FastRCNNOutputLayers(cfg, input_shape)` (`@configurable`).

    Args:
        input_shape: the box features' ShapeSpec (features per box = channels * height * width)
            or that number; Detectron2's first argument.
        input_size: features per box (1024 for the FPN head, 2048 for C4's res5 means); another
            way to give `input_shape`.
        num_classes: K foreground classes.
        box2box_transform: decodes deltas (weights 10, 10, 5, 5).
        cls_agnostic_bbox_reg: one box regression for all classes.
        test_score_thresh, test_nms_thresh, test_topk_per_image: inference settings.
        smooth_l1_beta, box_reg_loss_type: training settings.
        loss_weight: a weight for every loss, or {"loss_cls": w, "loss_box_reg": w}.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec | int | None = None,
        *,
        num_classes: int,
        box2box_transform: Box2BoxTransform,
        cls_agnostic_bbox_reg: bool = False,
        test_score_thresh: float = 0.05,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: float | dict[str, float] | None = None,
        input_size: int | None = None,
    ):
        super().__init__()
        if isinstance(input_shape, ShapeSpec):
            dims = (input_shape.channels, input_shape.height, input_shape.width)
            input_shape = (dims[0] or 1) * (dims[1] or 1) * (dims[2] or 1)
        if (input_shape is None) == (input_size is None):
            raise ValueError("FastRCNNOutputLayers needs one of input_shape and input_size")
        input_size = int(input_shape if input_size is None else input_size)  # type: ignore[arg-type]
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": float(loss_weight), "loss_box_reg": float(loss_weight)}
        self.num_classes = num_classes
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        num_reg = 1 if cls_agnostic_bbox_reg else num_classes
        self.bbox_pred = nn.Linear(input_size, num_reg * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)
        self.box2box_transform = box2box_transform
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.smooth_l1_beta = smooth_l1_beta
        if box_reg_loss_type not in ("smooth_l1", "giou"):
            raise ValueError(f"box loss must be smooth_l1 or giou, got {box_reg_loss_type!r}")
        self.box_reg_loss_type = box_reg_loss_type
        self.loss_weight = loss_weight or {}

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        """Detectron2's `FastRCNNOutputLayers(cfg, input_shape)`: arguments read from the config."""
        from masktron.models.build import box_predictor_kwargs

        return box_predictor_kwargs(cfg, input_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, D) or (R, C, 1, 1) features -> scores (R, K+1), deltas (R, K*4)."""
        x = torch.flatten(x, start_dim=1)  # (R, ...) -> (R, D)
        return self.cls_score(x), self.bbox_pred(x)

    def predict_boxes(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[torch.Tensor]:
        """Per image (R_i, K*4) boxes decoded from the deltas against the proposals."""
        if not proposals:
            return []
        _, deltas = predictions
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        boxes = self.box2box_transform.apply_deltas(deltas, proposal_boxes)
        return split_per_image(boxes, proposals)

    def predict_probs(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[torch.Tensor]:
        scores, _ = predictions
        return split_per_image(F.softmax(scores, dim=-1), proposals)

    def inference(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]:
        """Detections per image and, per image, the index of each one's proposal (as
        Detectron2's: `instances, _ = box_predictor.inference(predictions, proposals)`)."""
        return fast_rcnn_inference(
            self.predict_boxes(predictions, proposals),
            self.predict_probs(predictions, proposals),
            [p.image_size for p in proposals],
            score_thresh=self.test_score_thresh,
            nms_thresh=self.test_nms_thresh,
            topk_per_image=self.test_topk_per_image,
        )

    def losses(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy over sampled proposals and box regression over their foreground."""
        scores, deltas = predictions
        if proposals:
            gt_classes = torch.cat([p.gt_classes for p in proposals])
            proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
            gt_boxes = torch.cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals]
            )
        else:  # a batch without proposals: zero losses that still reach the predictions
            gt_classes = torch.zeros(0, dtype=torch.long, device=scores.device)
            proposal_boxes = gt_boxes = deltas.new_zeros((0, 4))
        loss_cls = F.cross_entropy(scores, gt_classes) if gt_classes.numel() else scores.sum() * 0.0
        fg = torch.nonzero((gt_classes >= 0) & (gt_classes < self.num_classes)).squeeze(1)
        if deltas.shape[1] == 4:  # class-agnostic
            fg_deltas = deltas[fg]
        else:  # (R, K*4) -> (R, K, 4), then each proposal's ground-truth class
            fg_deltas = deltas.view(-1, self.num_classes, 4)[fg, gt_classes[fg]]
        if self.box_reg_loss_type == "smooth_l1":
            target = self.box2box_transform.get_deltas(proposal_boxes[fg], gt_boxes[fg])
            loss_box = smooth_l1_loss(fg_deltas, target, self.smooth_l1_beta, reduction="sum")
        else:
            pred = self.box2box_transform.apply_deltas(fg_deltas, proposal_boxes[fg])
            loss_box = giou_loss(pred, gt_boxes[fg], reduction="sum")
        loss_box = loss_box / max(gt_classes.numel(), 1)
        return {
            "loss_cls": loss_cls * self.loss_weight.get("loss_cls", 1.0),
            "loss_box_reg": loss_box * self.loss_weight.get("loss_box_reg", 1.0),
        }

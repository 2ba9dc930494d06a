"""Region Proposal Network (Ren et al., Faster R-CNN, 2015): objectness and deltas per anchor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from masktron.config.configurable import configurable
from masktron.layers import Conv2d, ShapeSpec, batched_nms, topk_size
from masktron.layers.losses import giou_loss, smooth_l1_loss
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher, subsample_labels
from masktron.structures import Boxes, ImageList, Instances, pairwise_iou


class StandardRPNHead(nn.Module):
    """A shared 3x3 conv + ReLU, then 1x1 convs for A objectness logits and A*4 deltas per cell.

    Args:
        in_channels: channels of every input level.
        num_anchors: anchors per cell A (the same at every level).
        box_dim: numbers per box delta (4).
        conv_dims: widths of the hidden convs; [-1] means one conv of `in_channels`.
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_anchors: int,
        box_dim: int = 4,
        conv_dims: Sequence[int] = (-1,),
    ):
        super().__init__()
        dims = [in_channels if d == -1 else d for d in conv_dims]
        if len(dims) == 1:
            self.conv: nn.Module = Conv2d(in_channels, dims[0], 3, padding=1, activation=F.relu)
        else:  # named conv0, conv1, ... as in Detectron2's checkpoints
            self.conv = nn.Sequential()
            for k, (c_in, c_out) in enumerate(zip([in_channels, *dims[:-1]], dims)):
                self.conv.add_module(
                    f"conv{k}", Conv2d(c_in, c_out, 3, padding=1, activation=F.relu)
                )
        hidden = dims[-1]
        self.objectness_logits = nn.Conv2d(hidden, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(hidden, num_anchors * box_dim, 1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                assert layer.bias is not None  # every conv here is built with a bias
                nn.init.constant_(layer.bias, 0)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        """Detectron2's `StandardRPNHead(cfg, input_shape)`: arguments read from the config."""
        from masktron.models.build import rpn_head_kwargs

        return rpn_head_kwargs(cfg, input_shape)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level (N, C, H, W) -> logits (N, A, H, W) and deltas (N, A*4, H, W)."""
        logits, deltas = [], []
        for x in features:
            t = self.conv(x)
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


def find_top_rpn_proposals(
    proposals: list[torch.Tensor],
    logits: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool = False,
) -> list[Instances]:
    """Per image: top-k per level, clip, drop tiny boxes, NMS within each level, top-k overall.

    Detectron2's signature (all arguments may be given by position).

    Args:
        proposals: per level (N, Hi*Wi*A, 4) decoded boxes.
        logits: per level (N, Hi*Wi*A) objectness logits.
        training: boxes or scores that are not finite raise FloatingPointError (a diverged
            training run) instead of being dropped.

    Returns:
        per image, Instances with `proposal_boxes` and `objectness_logits`, best first.
    """
    num_images = len(image_sizes)
    device = proposals[0].device
    batch_idx = torch.arange(num_images, device=device)
    topk_boxes, topk_scores, level_ids = [], [], []
    for level, (boxes_l, logits_l) in enumerate(zip(proposals, logits)):
        k = topk_size(logits_l.shape[1], pre_nms_topk)
        scores_l, idx = logits_l.topk(k, dim=1)  # (N, k)
        topk_boxes.append(boxes_l[batch_idx[:, None], idx])  # (N, k, 4)
        topk_scores.append(scores_l)
        level_ids.append(torch.full_like(idx[0], level))
    all_boxes = torch.cat(topk_boxes, dim=1)
    all_scores = torch.cat(topk_scores, dim=1)
    all_levels = torch.cat(level_ids, dim=0)

    results = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, levels = Boxes(all_boxes[n]), all_scores[n], all_levels
        valid = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores)
        if training and not valid.all():
            raise FloatingPointError(
                "RPN: predicted boxes or scores contain Inf/NaN; training has diverged"
            )
        if torch.jit.is_tracing() or not valid.all():  # traced: the filter goes into the graph
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        boxes.clip(image_size)
        keep = boxes.nonempty(threshold=min_box_size)
        if torch.jit.is_tracing() or not keep.all():
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = batched_nms(boxes.tensor, scores, levels, nms_thresh)[:post_nms_topk]
        results.append(
            Instances(image_size, proposal_boxes=boxes[keep], objectness_logits=scores[keep])
        )
    return results


class RPN(nn.Module):
    """Proposals from anchors: `forward(images, features, gt_instances)` -> (proposals, losses).

    Args:
        in_features: names of the feature maps to use (e.g. p2..p6, or res4).
        head: predicts logits and deltas per anchor.
        anchor_generator: anchors for those maps.
        anchor_matcher: labels anchors by IoU with ground truth (training).
        box2box_transform: decodes deltas (weights 1, 1, 1, 1).
        batch_size_per_image, positive_fraction: anchor sampling for the loss.
        pre_nms_topk, post_nms_topk: (train, test) numbers of boxes kept per level before NMS
            and per image after it.
        nms_thresh: IoU threshold of the per-level NMS.
        min_box_size: proposals with a side <= this are dropped.
        box_reg_loss_type: "smooth_l1" or "giou"; smooth_l1_beta: its beta.
        loss_weight: one weight for both losses, or {"loss_rpn_cls": w, "loss_rpn_loc": w}.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        head: StandardRPNHead,
        anchor_generator: DefaultAnchorGenerator,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: tuple[int, int],
        post_nms_topk: tuple[int, int],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
        loss_weight: float | dict[str, float] | None = None,
    ):
        super().__init__()
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        if box_reg_loss_type not in ("smooth_l1", "giou"):
            raise ValueError(f"RPN box loss must be smooth_l1 or giou, got {box_reg_loss_type!r}")
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta
        if loss_weight is None or isinstance(loss_weight, (int, float)):
            weight = 1.0 if loss_weight is None else float(loss_weight)
            loss_weight = {"loss_rpn_cls": weight, "loss_rpn_loc": weight}
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        """Detectron2's `RPN(cfg, input_shape)`: arguments read from the config."""
        from masktron.models.build import rpn_kwargs

        return rpn_kwargs(cfg, input_shape)

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        maps = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(maps)
        logits, deltas = self.rpn_head(maps)
        # (N, A, H, W) -> (N, H, W, A) -> (N, H*W*A): the order of the anchors.
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
        # (N, A*4, H, W) -> (N, A, 4, H, W) -> (N, H, W, A, 4) -> (N, H*W*A, 4)
        deltas = [
            x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1])
            .permute(0, 3, 4, 1, 2)
            .flatten(1, -2)
            for x in deltas
        ]
        losses: dict[str, torch.Tensor] = {}
        if self.training:
            if gt_instances is None:
                raise ValueError("RPN needs ground-truth instances in training mode")
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, logits, gt_labels, deltas, gt_boxes)
        proposals = self.predict_proposals(anchors, logits, deltas, images.image_sizes)
        return proposals, losses

    @torch.no_grad()
    def predict_proposals(
        self,
        anchors: list[Boxes],
        logits: list[torch.Tensor],
        deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        proposals = self._decode(anchors, deltas)
        return find_top_rpn_proposals(
            proposals,
            logits,
            image_sizes,
            nms_thresh=self.nms_thresh,
            pre_nms_topk=self.pre_nms_topk[self.training],
            post_nms_topk=self.post_nms_topk[self.training],
            min_box_size=self.min_box_size,
        )

    def _decode(self, anchors: list[Boxes], deltas: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level: (N, R, 4) deltas against (R, 4) anchors -> (N, R, 4) boxes."""
        n = deltas[0].shape[0]
        out = []
        for anchors_l, deltas_l in zip(anchors, deltas):
            b = anchors_l.tensor.size(1)
            flat = deltas_l.reshape(-1, b)  # (N, R, 4) -> (N*R, 4)
            base = anchors_l.tensor.unsqueeze(0).expand(n, -1, -1).reshape(-1, b)  # (N*R, 4)
            out.append(self.box2box_transform.apply_deltas(flat, base).view(n, -1, b))
        return out

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: (R,) labels (1 fg, 0 bg, -1 ignored; sampled) and (R, 4) matched gt boxes."""
        all_anchors = Boxes.cat(anchors)
        gt_labels, matched_boxes = [], []
        for inst in gt_instances:
            gt = inst.gt_boxes.to(all_anchors.device)
            matched_idx, labels = self.anchor_matcher(pairwise_iou(gt, all_anchors))
            labels = labels.to(torch.int64)
            pos, neg = subsample_labels(
                labels, self.batch_size_per_image, self.positive_fraction, bg_label=0
            )
            sampled = torch.full_like(labels, -1)
            sampled[pos], sampled[neg] = 1, 0
            gt_labels.append(sampled)
            if len(gt) == 0:
                matched_boxes.append(torch.zeros_like(all_anchors.tensor))
            else:
                matched_boxes.append(gt.tensor[matched_idx])
        return gt_labels, matched_boxes

    def losses(
        self,
        anchors: list[Boxes],
        logits: list[torch.Tensor],
        gt_labels: list[torch.Tensor],
        deltas: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Objectness BCE and box regression, both summed over sampled anchors and divided by
        `batch_size_per_image * num_images` (Detectron2's normaliser)."""
        labels = torch.stack(gt_labels)  # (N, R)
        all_anchors = Boxes.cat(anchors).tensor  # (R, 4)
        pred_deltas = torch.cat(deltas, dim=1)  # (N, R, 4)
        fg = labels == 1
        if self.box_reg_loss_type == "smooth_l1":
            target = torch.stack(
                [self.box2box_transform.get_deltas(all_anchors, g) for g in gt_boxes]
            )
            loc = smooth_l1_loss(pred_deltas[fg], target[fg], self.smooth_l1_beta, reduction="sum")
        else:
            pred_boxes = torch.stack(
                [self.box2box_transform.apply_deltas(d, all_anchors) for d in pred_deltas]
            )
            loc = giou_loss(pred_boxes[fg], torch.stack(gt_boxes)[fg], reduction="sum")
        valid = labels >= 0
        cls = F.binary_cross_entropy_with_logits(
            torch.cat(logits, dim=1)[valid], labels[valid].to(torch.float32), reduction="sum"
        )
        normalizer = self.batch_size_per_image * len(gt_labels)
        return {
            "loss_rpn_cls": cls / normalizer * self.loss_weight.get("loss_rpn_cls", 1.0),
            "loss_rpn_loc": loc / normalizer * self.loss_weight.get("loss_rpn_loc", 1.0),
        }

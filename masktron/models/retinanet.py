"""RetinaNet (Lin et al., "Focal Loss for Dense Object Detection", 2017): a one-stage detector.

Two small conv subnets, shared across P3-P7, predict K class logits and 4 box deltas for each
of the A anchors at every cell. Training labels every anchor by IoU (focal loss on classes,
smooth-L1 or GIoU on boxes, both normalised by a running mean of the foreground count);
inference keeps, per level, the sigmoid scores above a threshold and the top-k of them, then
runs class-wise NMS over all levels. Checkpoint names and numbers follow Detectron2's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.backbones.backbone import Backbone
from masktron.config.configurable import configurable
from masktron.layers import ShapeSpec, batched_nms, get_norm, topk_size
from masktron.layers.losses import giou_loss, sigmoid_focal_loss, smooth_l1_loss
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher
from masktron.models.rcnn import DetectorInput, GeneralizedRCNN
from masktron.structures import Boxes, ImageList, Instances, pairwise_iou


class RetinaNetHead(nn.Module):
    """Class and box subnets: `num_convs` x (3x3 conv [+ norm] + ReLU), then a 3x3 predictor.

    Submodule names match Detectron2's checkpoints: `cls_subnet.{0,2,4,6}` (convs, with ReLUs
    in between; with a norm the indices step by 3), `bbox_subnet.*`, `cls_score`, `bbox_pred`.

    Args:
        in_channels: channels of every input level.
        num_classes: K, foreground classes only (sigmoid per class, no background logit).
        num_anchors: A, anchors per cell (the same at every level).
        conv_dims: widths of the hidden convs.
        norm: "" or a norm name shared across levels ("GN", "LN"); BN statistics shared across
            levels are meaningless, so "BN"/"SyncBN" are refused.
        prior_prob: initial foreground probability: the class bias starts at -log((1-p)/p).
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        num_anchors: int,
        conv_dims: Sequence[int],
        norm: str = "",
        prior_prob: float = 0.01,
    ):
        super().__init__()
        if norm in ("BN", "SyncBN", "FrozenBN"):
            raise ValueError(f"MODEL.RETINANET.NORM={norm!r} is not supported; use '', GN or LN")
        if not conv_dims:
            raise ValueError("RetinaNetHead needs at least one hidden conv (RETINANET.NUM_CONVS)")
        self.cls_subnet = self._subnet(in_channels, conv_dims, norm)
        self.bbox_subnet = self._subnet(in_channels, conv_dims, norm)
        self.cls_score = nn.Conv2d(conv_dims[-1], num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(conv_dims[-1], num_anchors * 4, 3, padding=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, mean=0.0, std=0.01)
                nn.init.constant_(cast(torch.Tensor, layer.bias), 0.0)
        # Focal loss paper, section 4.1: start every anchor at foreground probability prior_prob.
        prior_logit = -math.log((1 - prior_prob) / prior_prob)
        nn.init.constant_(cast(torch.Tensor, self.cls_score.bias), prior_logit)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        """Detectron2's `RetinaNetHead(cfg, input_shape)`: arguments from `MODEL.RETINANET`."""
        from masktron.models.build_dense import retinanet_head_kwargs

        return retinanet_head_kwargs(cfg, list(input_shape))

    @staticmethod
    def _subnet(in_channels: int, conv_dims: Sequence[int], norm: str) -> nn.Sequential:
        layers: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *conv_dims[:-1]], conv_dims):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            norm_layer = get_norm(norm, c_out)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level (N, C, H, W) -> logits (N, A*K, H, W) and deltas (N, A*4, H, W)."""
        logits = [self.cls_score(self.cls_subnet(x)) for x in features]
        deltas = [self.bbox_pred(self.bbox_subnet(x)) for x in features]
        return logits, deltas


def permute_to_n_hwa_k(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, A*K, H, W) per-level predictions -> (N, H*W*A, K), the order of the anchors."""
    n, _, h, w = x.shape
    x = x.view(n, -1, k, h, w)  # (N, A*K, H, W) -> (N, A, K, H, W)
    return x.permute(0, 3, 4, 1, 2).reshape(n, -1, k)  # -> (N, H, W, A, K) -> (N, H*W*A, K)


@torch.no_grad()
def label_anchors(
    anchors: Boxes, gt_instances: list[Instances], matcher: Matcher, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class target of every anchor in every image.

    Args:
        anchors: (R, 4) XYXY anchors of all levels, in input-image pixels.
        gt_instances: per image, `gt_boxes` and `gt_classes` (0..K-1).
        matcher: labels by IoU (RetinaNet: [0.4, 0.5] -> background / ignored / foreground,
            with low-quality matches).
        num_classes: K; background anchors get label K.

    Returns:
        labels (N, R) int64 in {-1 ignored, 0..K-1 foreground class, K background};
        matched boxes (N, R, 4), meaningful only where the label is a foreground class.
    """
    labels, matched_boxes = [], []
    for inst in gt_instances:
        gt_boxes = inst.gt_boxes.to(anchors.device)
        matched_idx, match_labels = matcher(pairwise_iou(gt_boxes, anchors))
        if len(inst) > 0:
            labels_i = inst.gt_classes.to(anchors.device)[matched_idx].to(torch.int64)
            labels_i[match_labels == 0] = num_classes
            labels_i[match_labels == -1] = -1
            boxes_i = gt_boxes.tensor[matched_idx]
        else:  # an image without objects: every anchor is background
            labels_i = torch.full_like(matched_idx, num_classes)
            boxes_i = torch.zeros_like(anchors.tensor)
        labels.append(labels_i)
        matched_boxes.append(boxes_i)
    return torch.stack(labels), torch.stack(matched_boxes)


def retinanet_losses(
    anchors: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_deltas: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    *,
    box2box_transform: Box2BoxTransform,
    normalizer: float,
    focal_loss_alpha: float = 0.25,
    focal_loss_gamma: float = 2.0,
    box_reg_loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Sigmoid focal loss over all non-ignored anchors and box loss over foreground ones, both
    summed and divided by `normalizer` (RetinaNet's running foreground count).

    Args:
        anchors: (R, 4) XYXY anchors of all levels.
        pred_logits: (N, R, K) class logits; pred_deltas: (N, R, 4) box deltas.
        gt_labels, gt_boxes: from `label_anchors`, (N, R) and (N, R, 4).
    """
    num_classes = pred_logits.shape[-1]
    valid = gt_labels >= 0
    foreground = valid & (gt_labels != num_classes)
    # One-hot over K + 1 then drop the background column: background anchors are all-zero.
    target = F.one_hot(gt_labels[valid], num_classes + 1)[:, :-1].to(pred_logits.dtype)
    loss_cls = sigmoid_focal_loss(
        pred_logits[valid], target, alpha=focal_loss_alpha, gamma=focal_loss_gamma, reduction="sum"
    )
    if box_reg_loss_type == "smooth_l1":
        target_deltas = torch.stack([box2box_transform.get_deltas(anchors, g) for g in gt_boxes])
        loss_box = smooth_l1_loss(
            pred_deltas[foreground], target_deltas[foreground], smooth_l1_beta, reduction="sum"
        )
    elif box_reg_loss_type == "giou":
        pred_boxes = torch.stack([box2box_transform.apply_deltas(d, anchors) for d in pred_deltas])
        loss_box = giou_loss(pred_boxes[foreground], gt_boxes[foreground], reduction="sum")
    else:
        raise ValueError(f"RetinaNet box loss must be smooth_l1 or giou, got {box_reg_loss_type!r}")
    return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box / normalizer}


def retinanet_inference_single_image(
    anchors: list[Boxes],
    scores: list[torch.Tensor],
    deltas: list[torch.Tensor],
    image_size: tuple[int, int],
    *,
    box2box_transform: Box2BoxTransform,
    score_thresh: float,
    topk_candidates: int,
    nms_thresh: float,
    max_detections: int,
) -> Instances:
    """Detections of one image, in the coordinates of the network input.

    Per level: scores > `score_thresh`, then the `topk_candidates` best (anchor, class) pairs,
    decoded against their anchors (not clipped); then class-wise NMS over all levels and the
    `max_detections` best.

    Args:
        anchors: per level (R_l, 4) anchors.
        scores: per level (R_l, K) sigmoid probabilities; deltas: per level (R_l, 4).

    Returns:
        Instances with `pred_boxes`, `scores`, `pred_classes` (0..K-1), best first.
    """
    boxes_all, scores_all, classes_all = [], [], []
    for anchors_l, scores_l, deltas_l in zip(anchors, scores, deltas):
        keep = scores_l > score_thresh
        candidates = scores_l[keep]
        anchor_class = torch.nonzero(keep)  # (M, 2): (anchor index, class) of each candidate
        candidates, order = candidates.topk(topk_size(candidates.shape[0], topk_candidates))
        anchor_idx, class_idx = anchor_class[order].unbind(dim=1)
        boxes_all.append(
            box2box_transform.apply_deltas(deltas_l[anchor_idx], anchors_l.tensor[anchor_idx])
        )
        scores_all.append(candidates)
        classes_all.append(class_idx)
    boxes, scores_cat, classes = (torch.cat(x) for x in (boxes_all, scores_all, classes_all))
    keep = batched_nms(boxes, scores_cat, classes, nms_thresh)[:max_detections]
    return Instances(
        image_size,
        pred_boxes=Boxes(boxes[keep]),
        scores=scores_cat[keep],
        pred_classes=classes[keep],
    )


class RetinaNet(DetectorInput):
    """RetinaNet with Detectron2's input and output format (see `GeneralizedRCNN`).

    Args:
        backbone: e.g. ResNet-FPN with P6/P7 from C5.
        head: `RetinaNetHead`.
        head_in_features: the levels the head runs on (p3..p7).
        anchor_generator: anchors for those levels (A per cell, the same at each level).
        box2box_transform: delta coder (weights 1, 1, 1, 1).
        anchor_matcher: `Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)`.
        num_classes: K.
        focal_loss_alpha, focal_loss_gamma, smooth_l1_beta, box_reg_loss_type: training losses.
        test_score_thresh, test_topk_candidates, test_nms_thresh, max_detections_per_image:
            inference (see `retinanet_inference_single_image`).
        pixel_mean, pixel_std, input_format: input normalisation, as `GeneralizedRCNN`.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: RetinaNetHead,
        head_in_features: Sequence[str],
        anchor_generator: DefaultAnchorGenerator,
        box2box_transform: Box2BoxTransform,
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ):
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        if box_reg_loss_type not in ("smooth_l1", "giou"):
            raise ValueError(
                f"RetinaNet box loss must be smooth_l1 or giou, got {box_reg_loss_type!r}"
            )
        self.head = head
        self.head_in_features = list(head_in_features)
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher
        self.num_classes = num_classes
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        # Detectron2 divides the losses by an exponential moving average of the number of
        # foreground anchors (momentum 0.9, from 100): with one image per GPU the raw count
        # varies too much. It is training state, not a weight: it is not saved.
        self.loss_normalizer = 100.0
        self.loss_normalizer_momentum = 0.9

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """Detectron2's `RetinaNet(cfg)`: backbone, head and anchors built from the config."""
        from masktron.models.build_dense import retinanet_kwargs

        return retinanet_kwargs(cfg)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """Training: a dict of `loss_cls`, `loss_box_reg`. Inference: per image
        `{"instances": Instances}` in the pixels of `height` x `width`."""
        if not self.training:
            return self.inference(batched_inputs)
        if any("instances" not in x for x in batched_inputs):
            raise KeyError("training inputs need 'instances' with gt_boxes and gt_classes")
        images = self.preprocess_image(batched_inputs)
        anchors, logits, deltas = self._predict(images.tensor)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        all_anchors = Boxes.cat(anchors)
        gt_labels, gt_boxes = label_anchors(
            all_anchors, gt_instances, self.anchor_matcher, self.num_classes
        )
        num_foreground = ((gt_labels >= 0) & (gt_labels != self.num_classes)).sum().item()
        momentum = self.loss_normalizer_momentum
        self.loss_normalizer = momentum * self.loss_normalizer + (1 - momentum) * max(
            num_foreground, 1
        )
        return retinanet_losses(
            all_anchors.tensor,
            torch.cat(logits, dim=1),
            torch.cat(deltas, dim=1),
            gt_labels,
            gt_boxes,
            box2box_transform=self.box2box_transform,
            normalizer=self.loss_normalizer,
            focal_loss_alpha=self.focal_loss_alpha,
            focal_loss_gamma=self.focal_loss_gamma,
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )

    def _predict(
        self, images: torch.Tensor
    ) -> tuple[list[Boxes], list[torch.Tensor], list[torch.Tensor]]:
        """Per level: anchors (R_l, 4), logits (N, R_l, K), deltas (N, R_l, 4)."""
        features = self.backbone(images)
        maps = [features[f] for f in self.head_in_features]
        anchors = self.anchor_generator(maps)
        logits, deltas = self.head(maps)
        logits = [permute_to_n_hwa_k(x, self.num_classes) for x in logits]
        deltas = [permute_to_n_hwa_k(x, 4) for x in deltas]
        return anchors, logits, deltas

    def inference(
        self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True
    ) -> list[Any]:
        """Detections per image: `Instances` on the network input when not `do_postprocess`,
        else `{"instances": Instances}` rescaled to each input's `height` x `width`."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        maps = [features[f] for f in self.head_in_features]
        results = self.forward_inference(images, maps, list(self.head(maps)))
        if not do_postprocess:
            return results
        return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)

    def forward_inference(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
    ) -> list[Instances]:
        """Detections on the network input from the head's raw outputs (Detectron2's method).

        Args:
            images: the preprocessed batch (its `image_sizes` clip the boxes).
            features: the head's input maps, per level (N, C, H_l, W_l); they give the anchors.
            predictions: `[logits, deltas]` as the head returns them, per level
                (N, A*K, H_l, W_l) and (N, A*4, H_l, W_l).

        Returns:
            Per image, `Instances` with `pred_boxes`, `scores`, `pred_classes`.
        """
        anchors = self.anchor_generator(features)
        raw_logits, raw_deltas = predictions
        logits = [permute_to_n_hwa_k(x, self.num_classes) for x in raw_logits]
        deltas = [permute_to_n_hwa_k(x, 4) for x in raw_deltas]
        return [
            retinanet_inference_single_image(
                anchors,
                [x[n].sigmoid() for x in logits],
                [x[n] for x in deltas],
                image_size,
                box2box_transform=self.box2box_transform,
                score_thresh=self.test_score_thresh,
                topk_candidates=self.test_topk_candidates,
                nms_thresh=self.test_nms_thresh,
                max_detections=self.max_detections_per_image,
            )
            for n, image_size in enumerate(images.image_sizes)
        ]

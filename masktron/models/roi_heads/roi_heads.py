"""RoI heads: sample proposals against ground truth, pool their features, run the box and mask
heads. `StandardROIHeads` pools from FPN levels; `Res5ROIHeads` (the C4 layout) pools from res4
and runs ResNet's res5 stage on every RoI."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from masktron.config.configurable import configurable
from masktron.layers import ShapeSpec
from masktron.models.matcher import Matcher, subsample_labels
from masktron.models.poolers import ROIPooler, nchw_feature_maps
from masktron.models.roi_heads.box_head import FastRCNNConvFCHead, FastRCNNOutputLayers
from masktron.models.roi_heads.keypoint_head import (
    KRCNNConvDeconvUpsampleHead,
    select_proposals_with_visible_keypoints,
)
from masktron.models.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from masktron.structures import Boxes, ImageList, Instances, pairwise_iou


def add_ground_truth_to_proposals(
    targets: list[Instances], proposals: list[Instances]
) -> list[Instances]:
    """Append each image's ground-truth boxes to its proposals, with a near-certain logit, so
    the heads always see some positives early in training."""
    out = []
    for gt, props in zip(targets, proposals):
        device = props.objectness_logits.device
        # logit of probability 1 - 1e-10, i.e. "certainly an object"
        logit = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))
        gt_props = Instances(props.image_size)
        gt_props.proposal_boxes = gt.gt_boxes.to(device)
        gt_props.objectness_logits = logit * torch.ones(len(gt), device=device)
        out.append(Instances.cat([props, gt_props]))
    return out


def select_foreground_proposals(
    proposals: list[Instances], bg_label: int
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image, the proposals whose class is neither background nor ignored, and that mask."""
    selected, masks = [], []
    for props in proposals:
        fg = (props.gt_classes != -1) & (props.gt_classes != bg_label)
        selected.append(props[fg])
        masks.append(fg)
    return selected, masks


class ROIHeads(nn.Module):
    """Shared training logic: match proposals to ground truth and sample a batch of them.

    Args:
        num_classes: foreground classes K; background is label K.
        batch_size_per_image: proposals sampled per image for the losses.
        positive_fraction: at most this share of them foreground.
        proposal_matcher: labels proposals by IoU (threshold 0.5).
        proposal_append_gt: add ground-truth boxes to the proposals.
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec] | None = None) -> dict:
        """Detectron2's `ROIHeads(cfg)`: the matching and sampling arguments."""
        from masktron.models.build import roi_heads_common_kwargs

        return roi_heads_common_kwargs(cfg)

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: list[Instances], targets: list[Instances] | None
    ) -> list[Instances]:
        """Sampled proposals with `gt_classes` (K = background) and the matched `gt_*` fields."""
        if targets is None:
            raise ValueError("ROI heads need targets in training mode")
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals(targets, proposals)
        sampled = []
        for props, gt in zip(proposals, targets):
            iou = pairwise_iou(gt.gt_boxes.to(props.proposal_boxes.device), props.proposal_boxes)
            matched_idx, matched_labels = self.proposal_matcher(iou)
            if len(gt) > 0:
                classes = gt.gt_classes.to(matched_idx.device)[matched_idx]
                classes[matched_labels == 0] = self.num_classes
                classes[matched_labels == -1] = -1
            else:
                classes = torch.full_like(matched_idx, self.num_classes)
            fg, bg = subsample_labels(
                classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            idx = torch.cat([fg, bg])
            props = props[idx]
            props.gt_classes = classes[idx]
            if len(gt) > 0:
                target_idx = matched_idx[idx]
                for name, value in gt.get_fields().items():
                    if name.startswith("gt_") and not props.has(name):
                        props.set(name, value[target_idx])
            sampled.append(props)
        return sampled


class StandardROIHeads(ROIHeads):
    """Box head and optional mask and keypoint heads, each with its own pooler over FPN levels.

    Args:
        box_in_features: feature names to pool boxes from (e.g. p2..p5).
        box_pooler, box_head, box_predictor: the box branch.
        mask_in_features, mask_pooler, mask_head: the mask branch, or None for Faster R-CNN.
        keypoint_in_features, keypoint_pooler, keypoint_head: the keypoint branch (Keypoint
            R-CNN), or None.
        **kwargs: see `ROIHeads`.
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: FastRCNNConvFCHead,
        box_predictor: FastRCNNOutputLayers,
        mask_in_features: list[str] | None = None,
        mask_pooler: ROIPooler | None = None,
        mask_head: MaskRCNNConvUpsampleHead | None = None,
        keypoint_in_features: list[str] | None = None,
        keypoint_pooler: ROIPooler | None = None,
        keypoint_head: KRCNNConvDeconvUpsampleHead | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.box_in_features = list(box_in_features)
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if mask_head is not None:
            if mask_pooler is None:
                raise ValueError("StandardROIHeads: a mask_head needs a mask_pooler")
            self.mask_in_features = list(mask_in_features or box_in_features)
            self.mask_pooler = mask_pooler
            self.mask_head = mask_head
        self.keypoint_on = keypoint_head is not None
        if keypoint_head is not None:
            if keypoint_pooler is None:
                raise ValueError("StandardROIHeads: a keypoint_head needs a keypoint_pooler")
            self.keypoint_in_features = list(keypoint_in_features or box_in_features)
            self.keypoint_pooler = keypoint_pooler
            self.keypoint_head = keypoint_head

    @classmethod
    def from_config(  # type: ignore[override]  # Detectron2's signature: input_shape needed
        cls, cfg: Any, input_shape: dict[str, ShapeSpec]
    ) -> dict[str, Any]:
        """Detectron2's `StandardROIHeads(cfg, input_shape)`: matching arguments, then the box,
        mask and keypoint branches from `_init_box_head` / `_init_mask_head` /
        `_init_keypoint_head` (which subclasses may override, as in Detectron2)."""
        from masktron.models.build import roi_heads_common_kwargs

        return {
            **roi_heads_common_kwargs(cfg),
            **cls._init_box_head(cfg, input_shape),
            **cls._init_mask_head(cfg, input_shape),
            **cls._init_keypoint_head(cfg, input_shape),
        }

    @classmethod
    def _init_box_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        from masktron.models.build import box_branch_kwargs

        return box_branch_kwargs(cfg, input_shape)

    @classmethod
    def _init_mask_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        from masktron.models.build import mask_branch_kwargs

        return mask_branch_kwargs(cfg, input_shape)

    @classmethod
    def _init_keypoint_head(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        from masktron.models.build import keypoint_branch_kwargs

        return keypoint_branch_kwargs(cfg, input_shape)

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        if self.training:
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals, targets)
            if self.mask_on:
                losses.update(self._forward_mask(features, proposals))
            if self.keypoint_on:
                losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        features = nchw_feature_maps(features, self._pooled_feature_names())
        detections = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def _pooled_feature_names(self) -> list[str]:
        """The feature maps the box, mask and keypoint poolers read."""
        names = list(self.box_in_features)
        if self.mask_on:
            names += self.mask_in_features
        if self.keypoint_on:
            names += self.keypoint_in_features
        return names

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        """Run the mask and keypoint heads on final detections (inference)."""
        if self.mask_on:
            instances = self._forward_mask(features, instances)
        if self.keypoint_on:
            instances = self._forward_keypoint(features, instances)
        return instances

    def _forward_box(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> Any:
        """Training: the box losses on the sampled `proposals`. Inference: detections.
        (`targets` is for heads that relabel their own proposals, like Cascade R-CNN's.)"""
        maps = [features[f] for f in self.box_in_features]
        x = self.box_pooler(maps, [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(self.box_head(x))
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        instances, _ = self.box_predictor.inference(predictions, proposals)
        return instances

    def _forward_mask(self, features: dict[str, torch.Tensor], instances: list[Instances]):
        maps = [features[f] for f in self.mask_in_features]
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            boxes = [x.proposal_boxes for x in instances]
        else:
            boxes = [x.pred_boxes for x in instances]
        return self.mask_head(self.mask_pooler(maps, boxes), instances)

    def _forward_keypoint(self, features: dict[str, torch.Tensor], instances: list[Instances]):
        """Training: foreground proposals holding a visible keypoint. Inference: detections."""
        maps = [features[f] for f in self.keypoint_in_features]
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            instances = select_proposals_with_visible_keypoints(instances)
            boxes = [x.proposal_boxes for x in instances]
        else:
            boxes = [x.pred_boxes for x in instances]
        return self.keypoint_head(self.keypoint_pooler(maps, boxes), instances)


class Res5ROIHeads(ROIHeads):
    """The C4 layout: pool 14x14 from res4, run res5 on each RoI (-> 7x7), average for the box
    predictor, and feed the 7x7 map to the mask head (deconv to 14x14, predictor).

    Args:
        in_features: the single feature name to pool from ("res4").
        pooler: the RoI pooler at that feature's stride.
        res5: ResNet's last stage, built for this head (`roi_heads.res5.*` in checkpoints).
        box_predictor: box scores and deltas from the averaged res5 features.
        mask_head: optional mask head on the res5 features.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: FastRCNNOutputLayers,
        mask_head: MaskRCNNConvUpsampleHead | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(in_features) != 1:
            raise ValueError(f"Res5ROIHeads pools from one feature map, got {in_features}")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if mask_head is not None:
            self.mask_head = mask_head

    @classmethod
    def from_config(  # type: ignore[override]  # Detectron2's signature: input_shape needed
        cls, cfg: Any, input_shape: dict[str, ShapeSpec]
    ) -> dict[str, Any]:
        """Detectron2's `Res5ROIHeads(cfg, input_shape)`: arguments read from the config."""
        from masktron.models.build import res5_roi_heads_kwargs

        return res5_roi_heads_kwargs(cfg, input_shape)

    def _shared_roi_transform(self, features: list[torch.Tensor], boxes: list[Boxes]):
        return self.res5(self.pooler(features, boxes))

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        if self.training:
            proposals = self.label_and_sample_proposals(proposals, targets)
        maps = [features[f] for f in self.in_features]
        box_features = self._shared_roi_transform(maps, [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(box_features.mean(dim=[2, 3]))  # (R, C, 7, 7) -> (R, C)
        if self.training:
            losses = self.box_predictor.losses(predictions, proposals)
            if self.mask_on:
                fg_props, fg_masks = select_foreground_proposals(proposals, self.num_classes)
                mask_features = box_features[torch.cat(fg_masks, dim=0)]
                losses.update(self.mask_head(mask_features, fg_props))
            return proposals, losses
        detections, _ = self.box_predictor.inference(predictions, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def forward_with_given_boxes(
        self, features: dict[str, torch.Tensor], instances: list[Instances]
    ) -> list[Instances]:
        if self.mask_on:
            maps = [features[f] for f in self.in_features]
            x = self._shared_roi_transform(maps, [i.pred_boxes for i in instances])
            instances = self.mask_head(x, instances)
        return instances

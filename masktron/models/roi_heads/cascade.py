"""Cascade R-CNN's RoI heads (Cai and Vasconcelos, 2018): several box stages in sequence, each
refining the previous stage's boxes and trained at a higher IoU threshold; masks and
keypoints run on the last stage's boxes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from masktron.config.configurable import configurable
from masktron.layers import ShapeSpec
from masktron.models.matcher import Matcher
from masktron.models.poolers import ROIPooler
from masktron.models.roi_heads.box_head import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    fast_rcnn_inference,
)
from masktron.models.roi_heads.roi_heads import StandardROIHeads
from masktron.structures import Boxes, Instances, pairwise_iou


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by `scale`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class CascadeROIHeads(StandardROIHeads):
    """`StandardROIHeads` with S box stages (`box_head.<s>.*`, `box_predictor.<s>.*` in
    checkpoints) sharing one pooler.

    Training: stage 0 samples proposals as `StandardROIHeads` does; each later stage takes the
    previous stage's (detached, clipped, non-empty) boxes as proposals and labels all of them
    with its own matcher (no sampling). Losses are summed over stages as `<name>_stage<s>`; the
    pooled features' gradient is scaled by 1/S so that the backbone sees the stages' mean.
    The mask and keypoint heads train on stage 0's sampled proposals.

    Inference: the class scores of the S stages (each on its own input boxes) are averaged;
    the last stage's boxes are kept; then score threshold, per-class NMS and top-k.

    Args:
        box_heads: one box head per stage.
        box_predictors: one class-agnostic predictor per stage (its own box-coder weights).
        proposal_matchers: one matcher per stage (IoU 0.5, 0.6, 0.7 in Detectron2).
        **kwargs: see `StandardROIHeads` (without `box_head`, `box_predictor`,
            `proposal_matcher`).
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_heads: list[FastRCNNConvFCHead],
        box_predictors: list[FastRCNNOutputLayers],
        proposal_matchers: list[Matcher],
        **kwargs: Any,
    ):
        if "proposal_matcher" in kwargs:
            raise ValueError("CascadeROIHeads takes proposal_matchers (one per stage)")
        if not len(box_heads) == len(box_predictors) == len(proposal_matchers) >= 1:
            raise ValueError(
                "CascadeROIHeads needs as many box heads, predictors and matchers (>= 1), got "
                f"{len(box_heads)}, {len(box_predictors)}, {len(proposal_matchers)}"
            )
        if any(p.bbox_pred.out_features != 4 for p in box_predictors):
            raise ValueError("CascadeROIHeads needs class-agnostic box regression")
        super().__init__(
            box_in_features=box_in_features,
            box_pooler=box_pooler,
            box_head=box_heads[0],
            box_predictor=box_predictors[0],
            proposal_matcher=proposal_matchers[0],  # stage 0 matches the RPN's proposals
            **kwargs,
        )
        self.num_cascade_stages = len(box_heads)
        self.box_head = nn.ModuleList(box_heads)  # type: ignore[assignment]
        self.box_predictor = nn.ModuleList(box_predictors)  # type: ignore[assignment]
        self.proposal_matchers = proposal_matchers

    @classmethod
    def from_config(  # type: ignore[override]  # Detectron2's signature: input_shape needed
        cls, cfg: Any, input_shape: dict[str, ShapeSpec]
    ) -> dict[str, Any]:
        """Detectron2's `CascadeROIHeads(cfg, input_shape)`: one box head, predictor and matcher
        per stage (`MODEL.ROI_BOX_CASCADE_HEAD`), and the mask/keypoint branches."""
        from masktron.models.build import cascade_roi_heads_kwargs

        return cascade_roi_heads_kwargs(cfg, input_shape)

    def _forward_box(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> Any:
        """Training: the stages' losses. Inference: per image detections."""
        maps = [features[f] for f in self.box_in_features]
        image_sizes = [p.image_size for p in proposals]
        outputs = []  # (stage, predictions, the stage's input proposals)
        boxes: list[torch.Tensor] = []
        for stage in range(self.num_cascade_stages):
            if stage > 0:
                proposals = self._proposals_from_boxes(boxes, image_sizes)
                if self.training:
                    assert targets is not None
                    proposals = self._match_and_label_boxes(proposals, stage, targets)
            predictions = self._run_stage(maps, proposals, stage)
            boxes = self._predictor(stage).predict_boxes(predictions, proposals)
            outputs.append((stage, predictions, proposals))

        if self.training:
            losses = {}
            for stage, predictions, props in outputs:
                stage_losses = self._predictor(stage).losses(predictions, props)
                losses.update({f"{k}_stage{stage}": v for k, v in stage_losses.items()})
            return losses
        per_stage = [self._predictor(s).predict_probs(p, props) for s, p, props in outputs]
        # Average over stages, image by image: every stage scored the same boxes' successors.
        scores = [sum(image_scores) / self.num_cascade_stages for image_scores in zip(*per_stage)]
        last = self._predictor(self.num_cascade_stages - 1)
        instances, _ = fast_rcnn_inference(
            boxes,
            scores,  # type: ignore[arg-type]
            image_sizes,
            score_thresh=last.test_score_thresh,
            nms_thresh=last.test_nms_thresh,
            topk_per_image=last.test_topk_per_image,
        )
        return instances

    def _predictor(self, stage: int) -> FastRCNNOutputLayers:
        return self.box_predictor[stage]  # type: ignore[index]

    def _run_stage(
        self, maps: list[torch.Tensor], proposals: list[Instances], stage: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.box_pooler(maps, [p.proposal_boxes for p in proposals])
        if self.training:
            # Each stage's loss counts fully for its own head, but the shared features get
            # the mean over stages (Cascade R-CNN averages the stages' losses).
            x = _ScaleGradient.apply(x, 1.0 / self.num_cascade_stages)
        x = self.box_head[stage](x)  # type: ignore[index]
        return self._predictor(stage)(x)

    def _proposals_from_boxes(
        self, boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[Instances]:
        """The previous stage's boxes as the next stage's proposals: detached and clipped;
        empty ones dropped only in training (at inference every stage must score the same
        boxes so their scores can be averaged)."""
        proposals = []
        for b, size in zip(boxes, image_sizes):
            props_boxes = Boxes(b.detach())
            props_boxes.clip(size)
            if self.training:
                props_boxes = props_boxes[props_boxes.nonempty()]
            props = Instances(size)
            props.proposal_boxes = props_boxes
            proposals.append(props)
        return proposals

    @torch.no_grad()
    def _match_and_label_boxes(
        self, proposals: list[Instances], stage: int, targets: list[Instances]
    ) -> list[Instances]:
        """Label every proposal with `gt_classes` (background = K) and `gt_boxes` by this
        stage's matcher."""
        for props, gt in zip(proposals, targets):
            iou = pairwise_iou(gt.gt_boxes, props.proposal_boxes)
            matched_idx, labels = self.proposal_matchers[stage](iou)
            if len(gt) > 0:
                classes = gt.gt_classes[matched_idx]
                classes[labels == 0] = self.num_classes
                gt_boxes = gt.gt_boxes[matched_idx]
            else:
                classes = torch.full_like(matched_idx, self.num_classes)
                gt_boxes = Boxes(gt.gt_boxes.tensor.new_zeros((len(props), 4)))
            props.gt_classes = classes
            props.gt_boxes = gt_boxes
        return proposals

"""Config readers for the RoI-head variants beyond Mask R-CNN: the keypoint branch
(`MODEL.KEYPOINT_ON`, `MODEL.ROI_KEYPOINT_HEAD`) and Cascade R-CNN's stages
(`ROI_HEADS.NAME: CascadeROIHeads`, `MODEL.ROI_BOX_CASCADE_HEAD`). `build_roi_heads` in
`masktron.models.build` calls them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from masktron.config import CfgNode
from masktron.layers import ShapeSpec
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher
from masktron.models.poolers import ROIPooler
from masktron.models.roi_heads import FastRCNNConvFCHead, FastRCNNOutputLayers
from masktron.models.roi_heads.keypoint_head import KRCNNConvDeconvUpsampleHead


def build_keypoint_branch(cfg: CfgNode, in_shapes: list[ShapeSpec]) -> dict[str, Any]:
    """`StandardROIHeads` keyword arguments of the keypoint branch ({} without KEYPOINT_ON).

    Args:
        in_shapes: the shapes of `ROI_HEADS.IN_FEATURES`, in that order.
    """
    if not cfg.MODEL.KEYPOINT_ON:
        return {}
    k = cfg.MODEL.ROI_KEYPOINT_HEAD
    if k.NAME != "KRCNNConvDeconvUpsampleHead":
        raise ValueError(f"ROI_KEYPOINT_HEAD.NAME {k.NAME!r} is not supported")
    if k.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS:
        normalizer: float | str = "visible"
    else:  # Detectron2: the expected number of keypoints of a full batch of positives
        h = cfg.MODEL.ROI_HEADS
        normalizer = k.NUM_KEYPOINTS * h.BATCH_SIZE_PER_IMAGE * h.POSITIVE_FRACTION
    strides = [s.stride for s in in_shapes]
    if any(s is None for s in strides) or in_shapes[0].channels is None:
        raise ValueError("the keypoint head's input features need channels and strides")
    return {
        "keypoint_in_features": list(cfg.MODEL.ROI_HEADS.IN_FEATURES),
        "keypoint_pooler": ROIPooler(
            output_size=k.POOLER_RESOLUTION,
            scales=[1.0 / s for s in strides if s is not None],
            sampling_ratio=k.POOLER_SAMPLING_RATIO,
            pooler_type=k.POOLER_TYPE,
        ),
        "keypoint_head": KRCNNConvDeconvUpsampleHead(
            input_shape=ShapeSpec(channels=in_shapes[0].channels),
            num_keypoints=k.NUM_KEYPOINTS,
            conv_dims=list(k.CONV_DIMS),
            loss_weight=k.LOSS_WEIGHT,
            loss_normalizer=normalizer,
        ),
    }


def cascade_heads_kwargs(
    cfg: CfgNode,
    make_box_head: Callable[[], FastRCNNConvFCHead],
    make_predictor: Callable[[int], FastRCNNOutputLayers],
    **kwargs: Any,
) -> dict[str, Any]:
    """`CascadeROIHeads` arguments: one box head, predictor (with the stage's box-coder weights)
    and matcher per entry of `ROI_BOX_CASCADE_HEAD.IOUS` / `BBOX_REG_WEIGHTS`.

    Args:
        make_box_head: builds one stage's box head from `ROI_BOX_HEAD`.
        make_predictor: builds one stage's predictor for the head's output size.
        **kwargs: the other `StandardROIHeads` arguments; `proposal_matcher` is replaced by
            the stages' matchers.
    """
    c = cfg.MODEL.ROI_BOX_CASCADE_HEAD
    ious, weights = list(c.IOUS), [tuple(float(v) for v in w) for w in c.BBOX_REG_WEIGHTS]
    if any(len(w) != 4 for w in weights):
        raise ValueError(f"ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS entries need 4 values: {weights}")
    if len(ious) != len(weights) or not ious:
        raise ValueError(
            "MODEL.ROI_BOX_CASCADE_HEAD.IOUS and BBOX_REG_WEIGHTS need one entry per stage, got "
            f"{len(ious)} and {len(weights)}"
        )
    if not cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG:
        raise ValueError("CascadeROIHeads needs MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True")
    if ious[0] != cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]:
        raise ValueError(
            f"ROI_BOX_CASCADE_HEAD.IOUS[0] ({ious[0]}) must equal ROI_HEADS.IOU_THRESHOLDS[0] "
            f"({cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]}): stage 0 samples the RPN's proposals"
        )
    kwargs.pop("proposal_matcher", None)
    heads, predictors = [], []
    for w in weights:
        head = make_box_head()
        size = head.output_shape.channels
        assert size is not None
        predictor = make_predictor(size)
        predictor.box2box_transform = Box2BoxTransform(weights=(w[0], w[1], w[2], w[3]))
        heads.append(head)
        predictors.append(predictor)
    return dict(
        box_heads=heads,
        box_predictors=predictors,
        proposal_matchers=[Matcher([iou], [0, 1], allow_low_quality_matches=False) for iou in ious],
        **kwargs,
    )

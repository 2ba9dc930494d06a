"""Building RetinaNet and Panoptic FPN from a config: the only readers of `MODEL.RETINANET`,
`MODEL.SEM_SEG_HEAD` and `MODEL.PANOPTIC_FPN`.

`masktron.models.build.META_ARCHITECTURES` maps "RetinaNet" and "PanopticFPN" to the functions
here; they reuse its backbone, anchor, RPN and RoI-head builders.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from torch import nn

from masktron.config import CfgNode
from masktron.layers import ShapeSpec
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.registry import SEM_SEG_HEADS_REGISTRY
from masktron.models.retinanet import RetinaNet, RetinaNetHead
from masktron.models.sem_seg_head import SemSegFPNHead

logger = logging.getLogger(__name__)


def _core():  # type: ignore[no-untyped-def]
    # Imported when called: masktron.models.build imports this module for its table.
    from masktron.models import build

    return build


def _pick(shapes: dict[str, ShapeSpec], names: list[str], key: str) -> dict[str, ShapeSpec]:
    missing = [n for n in names if n not in shapes]
    if missing:
        raise ValueError(f"{key} names {missing}, but the backbone gives only {sorted(shapes)}")
    return {n: shapes[n] for n in names}


def retinanet_head_kwargs(cfg: CfgNode, in_shapes: list[ShapeSpec]) -> dict[str, Any]:
    """`RetinaNetHead` arguments for its input levels (`MODEL.RETINANET`)."""
    r = cfg.MODEL.RETINANET
    channels = in_shapes[0].channels
    if channels is None or any(s.channels != channels for s in in_shapes):
        raise ValueError(f"RetinaNet inputs {r.IN_FEATURES} must have the same number of channels")
    anchors = _core().build_anchor_generator(cfg, in_shapes)
    if len(set(anchors.num_cell_anchors)) != 1:
        raise ValueError(
            "the RetinaNet head needs the same number of anchors per cell at every level"
        )
    return dict(
        in_channels=channels,
        num_classes=r.NUM_CLASSES,
        num_anchors=anchors.num_cell_anchors[0],
        conv_dims=[channels] * r.NUM_CONVS,
        norm=r.NORM,
        prior_prob=r.PRIOR_PROB,
    )


def retinanet_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`RetinaNet` arguments, its backbone, head and anchors built (Detectron2's
    `RetinaNet(cfg)` reads the same)."""
    r = cfg.MODEL.RETINANET
    core = _core()
    backbone = core.build_backbone(cfg)
    in_shapes = list(
        _pick(backbone.output_shape(), r.IN_FEATURES, "MODEL.RETINANET.IN_FEATURES").values()
    )
    return dict(
        backbone=backbone,
        head=RetinaNetHead(**retinanet_head_kwargs(cfg, in_shapes)),
        head_in_features=r.IN_FEATURES,
        anchor_generator=core.build_anchor_generator(cfg, in_shapes),
        box2box_transform=Box2BoxTransform(weights=r.BBOX_REG_WEIGHTS),
        anchor_matcher=Matcher(r.IOU_THRESHOLDS, r.IOU_LABELS, allow_low_quality_matches=True),
        num_classes=r.NUM_CLASSES,
        focal_loss_alpha=r.FOCAL_LOSS_ALPHA,
        focal_loss_gamma=r.FOCAL_LOSS_GAMMA,
        smooth_l1_beta=r.SMOOTH_L1_LOSS_BETA,
        box_reg_loss_type=r.BBOX_REG_LOSS_TYPE,
        test_score_thresh=r.SCORE_THRESH_TEST,
        test_topk_candidates=r.TOPK_CANDIDATES_TEST,
        test_nms_thresh=r.NMS_THRESH_TEST,
        max_detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


def build_retinanet(cfg: CfgNode) -> RetinaNet:
    """RetinaNet on the backbone of `MODEL.BACKBONE.NAME` (normally ResNet-FPN with P6/P7)."""
    return RetinaNet(**retinanet_kwargs(cfg))


def sem_seg_head_kwargs(cfg: CfgNode, shapes: dict[str, ShapeSpec]) -> dict[str, Any]:
    """`SemSegFPNHead` arguments for the backbone's output shapes (`MODEL.SEM_SEG_HEAD`)."""
    s = cfg.MODEL.SEM_SEG_HEAD
    return dict(
        input_shape=_pick(shapes, s.IN_FEATURES, "MODEL.SEM_SEG_HEAD.IN_FEATURES"),
        num_classes=s.NUM_CLASSES,
        conv_dims=s.CONVS_DIM,
        common_stride=s.COMMON_STRIDE,
        norm=s.NORM,
        loss_weight=s.LOSS_WEIGHT,
        ignore_value=s.IGNORE_VALUE,
    )


def build_sem_seg_head(cfg: CfgNode, shapes: dict[str, ShapeSpec]) -> nn.Module:
    """The semantic FPN head of `MODEL.SEM_SEG_HEAD`."""
    s = cfg.MODEL.SEM_SEG_HEAD
    if s.NAME != "SemSegFPNHead":  # a user head registered as Detectron2 does
        return _core()._plugin(
            SEM_SEG_HEADS_REGISTRY,
            s.NAME,
            "MODEL.SEM_SEG_HEAD.NAME",
            cfg,
            shapes,
            builtins=["SemSegFPNHead"],
        )
    return SemSegFPNHead(**sem_seg_head_kwargs(cfg, shapes))


def panoptic_fpn_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`PanopticFPN` arguments: Mask R-CNN's parts, the semantic head and the combine rules."""
    if not cfg.MODEL.MASK_ON:
        raise ValueError(
            "PanopticFPN needs MODEL.MASK_ON=True: the panoptic output is built from masks"
        )
    if cfg.MODEL.KEYPOINT_ON or cfg.MODEL.LOAD_PROPOSALS:
        raise ValueError("PanopticFPN supports neither MODEL.KEYPOINT_ON nor MODEL.LOAD_PROPOSALS")
    p = cfg.MODEL.PANOPTIC_FPN
    if not p.COMBINE.ENABLED:
        logger.warning(
            "MODEL.PANOPTIC_FPN.COMBINE.ENABLED is ignored (as in Detectron2): call "
            "model.inference(inputs, do_postprocess=False) for the raw outputs"
        )
    core = _core()
    backbone = core.build_backbone(cfg)
    shapes = backbone.output_shape()
    return dict(
        backbone=backbone,
        proposal_generator=core.build_rpn(cfg, shapes),
        roi_heads=core.build_roi_heads(cfg, shapes),
        sem_seg_head=cast(SemSegFPNHead, build_sem_seg_head(cfg, shapes)),
        combine_overlap_thresh=p.COMBINE.OVERLAP_THRESH,
        combine_stuff_area_thresh=p.COMBINE.STUFF_AREA_LIMIT,
        combine_instances_score_thresh=p.COMBINE.INSTANCES_CONFIDENCE_THRESH,
        instance_loss_weight=p.INSTANCE_LOSS_WEIGHT,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


def build_panoptic_fpn(cfg: CfgNode) -> PanopticFPN:
    """Mask R-CNN (FPN) + the semantic FPN head, with `MODEL.PANOPTIC_FPN`'s combine rules."""
    return PanopticFPN(**panoptic_fpn_kwargs(cfg))

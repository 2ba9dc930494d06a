"""Building models from a config: the only code that reads `cfg.MODEL.*`.

`build_model(cfg)` picks the family by `MODEL.META_ARCHITECTURE` from a plain table; each
family's `build_*` function reads its keys and calls the constructors, so reading it shows the
architecture. The `*_kwargs` helpers give a constructor's arguments; they are what Detectron2's
`X(cfg, input_shape)` constructors (`from_config`) use too.

Plug-ins (Detectron2's registries, `masktron.models.registry`): for each slot the config names
(`MODEL.META_ARCHITECTURE`, `MODEL.BACKBONE.NAME`, `MODEL.PROPOSAL_GENERATOR.NAME`,
`MODEL.RPN.HEAD_NAME`, `MODEL.ROI_HEADS.NAME`, `MODEL.ROI_BOX_HEAD.NAME`,
`MODEL.ROI_MASK_HEAD.NAME`, `MODEL.SEM_SEG_HEAD.NAME`), a built-in name is built by the explicit
function here; any other name is looked up in the slot's registry and called as Detectron2 does
(`cls(cfg, input_shape)`, or `fn(cfg, input_shape)` for backbones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from omegaconf import OmegaConf
from torch import nn

from masktron.backbones.backbone import Backbone
from masktron.backbones.fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from masktron.backbones.resnet import DEPTH_TO_BLOCKS, BasicStem, ResNet, make_stage
from masktron.config import CfgNode
from masktron.layers import ShapeSpec, get_norm
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.build_dense import build_panoptic_fpn, build_retinanet
from masktron.models.build_heads import build_keypoint_branch, cascade_heads_kwargs
from masktron.models.matcher import Matcher
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.poolers import ROIPooler
from masktron.models.proposal_network import ProposalNetwork
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.registry import (
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    RPN_HEAD_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
)
from masktron.models.retinanet import RetinaNet
from masktron.models.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    Res5ROIHeads,
    StandardROIHeads,
)
from masktron.models.roi_heads.cascade import CascadeROIHeads
from masktron.models.rpn import RPN, StandardRPNHead
from masktron.models.sem_seg_head import SemSegFPNHead

logger = logging.getLogger(__name__)

_STAGE_INDEX = {"stem": 0, "res2": 1, "res3": 2, "res4": 3, "res5": 4}


def _known(value: int | None, what: str) -> int:
    """A ShapeSpec field that backbones and heads always fill (the dataclass allows None)."""
    assert value is not None, f"a feature map without {what}"
    return value


def _norm_factory(name: str) -> Callable[[int], nn.Module | None]:
    return lambda channels: get_norm(name, channels)


def _plugin(registry: Any, name: str, key: str, *args: Any, builtins: Sequence[str]) -> Any:
    """A registered user part for a config slot whose name is not one of `builtins`."""
    if name not in registry:
        known = ", ".join(repr(b) for b in builtins)
        raise ValueError(
            f"{key} {name!r} is not one of {known} nor a name registered in "
            f"{registry._name}_REGISTRY"
        )
    return registry.get(name)(*args)


def build_resnet_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> ResNet:
    """ResNet/ResNeXt from `MODEL.RESNETS`; the stages after the last output are dropped.

    `input_shape` (Detectron2's second argument) gives the input channels; by default one per
    `MODEL.PIXEL_MEAN` entry."""
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in DEPTH_TO_BLOCKS:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH must be one of {sorted(DEPTH_TO_BLOCKS)}, got {r.DEPTH}"
        )
    if r.RES5_DILATION not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION must be 1 or 2, got {r.RES5_DILATION}")
    if any(r.DEFORM_ON_PER_STAGE):
        raise ValueError(
            "deformable convolutions (MODEL.RESNETS.DEFORM_ON_PER_STAGE) are not supported"
        )
    unknown = [f for f in r.OUT_FEATURES if f not in _STAGE_INDEX]
    if unknown:
        raise ValueError(f"MODEL.RESNETS.OUT_FEATURES has unknown names {unknown}")
    norm = _norm_factory(r.NORM)
    basic = r.DEPTH in (18, 34)
    # Detectron2 also pins RES2_OUT_CHANNELS to 64 here; other widths make compact models.
    if basic and (r.NUM_GROUPS != 1 or r.RES5_DILATION != 1):
        raise ValueError("ResNet-18/34 need NUM_GROUPS=1 and RES5_DILATION=1")
    in_channels = input_shape.channels if input_shape and input_shape.channels else None
    stem = BasicStem(
        in_channels=in_channels or len(cfg.MODEL.PIXEL_MEAN),
        out_channels=r.STEM_OUT_CHANNELS,
        norm=norm,
    )
    # All four stages are built, then ResNet keeps those up to the last output: Detectron2's
    # order, so a seed gives its initial weights (and the random state after the backbone).
    in_ch, out_ch = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for idx, num_blocks in enumerate(DEPTH_TO_BLOCKS[r.DEPTH]):
        dilation = r.RES5_DILATION if idx == 3 else 1
        first_stride = 1 if idx == 0 or dilation == 2 else 2
        stages.append(
            make_stage(
                num_blocks=num_blocks,
                first_stride=first_stride,
                in_channels=in_ch,
                out_channels=out_ch,
                bottleneck_channels=bottleneck,
                num_groups=r.NUM_GROUPS,
                norm=norm,
                stride_in_1x1=r.STRIDE_IN_1X1,
                dilation=dilation,
                bottleneck=not basic,
            )
        )
        in_ch, out_ch, bottleneck = out_ch, out_ch * 2, bottleneck * 2
    return ResNet(
        stem=stem,
        stages=stages,
        out_features=r.OUT_FEATURES,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )


def build_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> FPN:
    """ResNet + FPN with a max-pooled P6 (R-CNN)."""
    return FPN(
        bottom_up=build_resnet_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def build_retinanet_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> FPN:
    """ResNet + FPN with P6/P7 convolved from C5 (RetinaNet)."""
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(
            _known(bottom_up.output_shape()["res5"].channels, "channels"), out_channels, "res5"
        ),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "build_resnet_backbone": build_resnet_backbone,
    "build_resnet_fpn_backbone": build_resnet_fpn_backbone,
    "build_retinanet_resnet_fpn_backbone": build_retinanet_resnet_fpn_backbone,
}


def build_backbone(cfg: CfgNode, input_shape: ShapeSpec | None = None) -> Backbone:
    """The backbone of `MODEL.BACKBONE.NAME` (built in, or a registered user function)."""
    name = cfg.MODEL.BACKBONE.NAME
    if name in BACKBONES:
        return BACKBONES[name](cfg, input_shape)
    shape = input_shape or ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    backbone = _plugin(
        BACKBONE_REGISTRY, name, "MODEL.BACKBONE.NAME", cfg, shape, builtins=list(BACKBONES)
    )
    if not isinstance(backbone, Backbone):
        raise TypeError(f"MODEL.BACKBONE.NAME {name!r} returned {type(backbone).__name__}")
    return backbone


def anchor_generator_kwargs(cfg: CfgNode, shapes: Sequence[ShapeSpec]) -> dict[str, Any]:
    """`DefaultAnchorGenerator` arguments for feature maps of these shapes."""
    a = cfg.MODEL.ANCHOR_GENERATOR
    return {
        "sizes": a.SIZES,
        "aspect_ratios": a.ASPECT_RATIOS,
        "strides": [_known(s.stride, "stride") for s in shapes],
        "offset": a.OFFSET,
    }


def build_anchor_generator(cfg: CfgNode, shapes: list[ShapeSpec]) -> DefaultAnchorGenerator:
    a = cfg.MODEL.ANCHOR_GENERATOR
    if a.NAME != "DefaultAnchorGenerator":
        raise ValueError(f"MODEL.ANCHOR_GENERATOR.NAME {a.NAME!r} is not supported")
    return DefaultAnchorGenerator(**anchor_generator_kwargs(cfg, shapes))


def rpn_head_kwargs(cfg: CfgNode, in_shapes: Sequence[ShapeSpec]) -> dict[str, Any]:
    """`StandardRPNHead` arguments for its input levels."""
    if len({s.channels for s in in_shapes}) != 1:
        raise ValueError("the RPN head's input levels must have the same number of channels")
    anchors = build_anchor_generator(cfg, list(in_shapes))
    if len(set(anchors.num_cell_anchors)) != 1:
        raise ValueError("the RPN head needs the same number of anchors per cell at every level")
    return {
        "in_channels": _known(in_shapes[0].channels, "channels"),
        "num_anchors": anchors.num_cell_anchors[0],
        "box_dim": anchors.box_dim,
        "conv_dims": cfg.MODEL.RPN.CONV_DIMS,
    }


def build_rpn_head(cfg: CfgNode, in_shapes: list[ShapeSpec]) -> nn.Module:
    """The RPN head of `MODEL.RPN.HEAD_NAME` (StandardRPNHead or a registered one)."""
    name = cfg.MODEL.RPN.HEAD_NAME
    if name == "StandardRPNHead":
        return StandardRPNHead(**rpn_head_kwargs(cfg, in_shapes))
    return _plugin(
        RPN_HEAD_REGISTRY, name, "MODEL.RPN.HEAD_NAME", cfg, in_shapes, builtins=["StandardRPNHead"]
    )


def rpn_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """`RPN` arguments (its head and anchors built) for a backbone's output shapes."""
    r = cfg.MODEL.RPN
    in_shapes = [shapes[f] for f in r.IN_FEATURES]
    if len({s.channels for s in in_shapes}) != 1:
        raise ValueError(f"RPN inputs {r.IN_FEATURES} must have the same number of channels")
    anchors = build_anchor_generator(cfg, in_shapes)
    return dict(
        in_features=r.IN_FEATURES,
        head=build_rpn_head(cfg, in_shapes),
        anchor_generator=anchors,
        anchor_matcher=Matcher(r.IOU_THRESHOLDS, r.IOU_LABELS, allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform(weights=r.BBOX_REG_WEIGHTS),
        batch_size_per_image=r.BATCH_SIZE_PER_IMAGE,
        positive_fraction=r.POSITIVE_FRACTION,
        pre_nms_topk=(r.PRE_NMS_TOPK_TRAIN, r.PRE_NMS_TOPK_TEST),
        post_nms_topk=(r.POST_NMS_TOPK_TRAIN, r.POST_NMS_TOPK_TEST),
        nms_thresh=r.NMS_THRESH,
        min_box_size=cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
        box_reg_loss_type=r.BBOX_REG_LOSS_TYPE,
        smooth_l1_beta=r.SMOOTH_L1_BETA,
        loss_weight={
            "loss_rpn_cls": r.LOSS_WEIGHT,
            "loss_rpn_loc": r.BBOX_REG_LOSS_WEIGHT * r.LOSS_WEIGHT,
        },
    )


def build_rpn(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> RPN:
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN":
        raise ValueError("build_rpn needs MODEL.PROPOSAL_GENERATOR.NAME = RPN")
    return RPN(**rpn_kwargs(cfg, shapes))


def build_proposal_generator(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> nn.Module | None:
    """`MODEL.PROPOSAL_GENERATOR.NAME`'s proposal generator: the RPN, None for
    "PrecomputedProposals" (proposals come with the inputs), or a registered one."""
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals":
        return None
    if name == "RPN":
        return build_rpn(cfg, shapes)
    return _plugin(
        PROPOSAL_GENERATOR_REGISTRY,
        name,
        "MODEL.PROPOSAL_GENERATOR.NAME",
        cfg,
        shapes,
        builtins=["RPN", "PrecomputedProposals"],
    )


def box_predictor_kwargs(cfg: CfgNode, input_shape: ShapeSpec | int) -> dict[str, Any]:
    """`FastRCNNOutputLayers` arguments for box features of this shape (or size)."""
    b = cfg.MODEL.ROI_BOX_HEAD
    if b.USE_SIGMOID_CE or b.USE_FED_LOSS:
        raise ValueError("ROI_BOX_HEAD.USE_SIGMOID_CE / USE_FED_LOSS are not supported")
    return dict(
        input_shape=input_shape,
        num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        box2box_transform=Box2BoxTransform(weights=b.BBOX_REG_WEIGHTS),
        cls_agnostic_bbox_reg=b.CLS_AGNOSTIC_BBOX_REG,
        test_score_thresh=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        test_nms_thresh=cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
        test_topk_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        smooth_l1_beta=b.SMOOTH_L1_BETA,
        box_reg_loss_type=b.BBOX_REG_LOSS_TYPE,
        loss_weight={"loss_box_reg": b.BBOX_REG_LOSS_WEIGHT},
    )


def build_box_predictor(cfg: CfgNode, input_size: int) -> FastRCNNOutputLayers:
    return FastRCNNOutputLayers(**box_predictor_kwargs(cfg, input_size))


def mask_head_kwargs(cfg: CfgNode, input_shape: ShapeSpec) -> dict[str, Any]:
    """`MaskRCNNConvUpsampleHead` arguments for pooled features of this shape."""
    m = cfg.MODEL.ROI_MASK_HEAD
    return dict(
        input_shape=input_shape,
        num_classes=1 if m.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        conv_dims=[m.CONV_DIM] * (m.NUM_CONV + 1),
        conv_norm=m.NORM,
    )


def build_mask_head(cfg: CfgNode, input_shape: ShapeSpec | int) -> nn.Module:
    """The mask head of `ROI_MASK_HEAD.NAME` for pooled features (a ShapeSpec or channels)."""
    if isinstance(input_shape, int):
        res = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
        input_shape = ShapeSpec(channels=input_shape, height=res, width=res)
    name = cfg.MODEL.ROI_MASK_HEAD.NAME
    if name == "MaskRCNNConvUpsampleHead":
        return MaskRCNNConvUpsampleHead(**mask_head_kwargs(cfg, input_shape))
    return _plugin(
        ROI_MASK_HEAD_REGISTRY,
        name,
        "MODEL.ROI_MASK_HEAD.NAME",
        cfg,
        input_shape,
        builtins=["MaskRCNNConvUpsampleHead"],
    )


def box_head_kwargs(cfg: CfgNode, input_shape: ShapeSpec) -> dict[str, Any]:
    """`FastRCNNConvFCHead` arguments for pooled features of this shape."""
    b = cfg.MODEL.ROI_BOX_HEAD
    return dict(
        input_shape=input_shape,
        conv_dims=[b.CONV_DIM] * b.NUM_CONV,
        fc_dims=[b.FC_DIM] * b.NUM_FC,
        conv_norm=b.NORM,
    )


def build_box_head(cfg: CfgNode, input_shape: ShapeSpec) -> nn.Module:
    """The box head of `ROI_BOX_HEAD.NAME` (FastRCNNConvFCHead or a registered one)."""
    name = cfg.MODEL.ROI_BOX_HEAD.NAME
    if name == "FastRCNNConvFCHead":
        return FastRCNNConvFCHead(**box_head_kwargs(cfg, input_shape))
    return _plugin(
        ROI_BOX_HEAD_REGISTRY,
        name,
        "MODEL.ROI_BOX_HEAD.NAME",
        cfg,
        input_shape,
        builtins=["FastRCNNConvFCHead"],
    )


def _pooler(head: CfgNode, shapes: list[ShapeSpec]) -> ROIPooler:
    return ROIPooler(
        output_size=head.POOLER_RESOLUTION,
        scales=[1.0 / _known(s.stride, "stride") for s in shapes],
        sampling_ratio=head.POOLER_SAMPLING_RATIO,
        pooler_type=head.POOLER_TYPE,
    )


def _res5_head(cfg: CfgNode) -> tuple[nn.Sequential, int]:
    """ResNet's res5 stage for the C4 RoI head: 3 blocks, the first with stride 2."""
    r = cfg.MODEL.RESNETS
    if r.RES5_DILATION != 1:
        raise ValueError("Res5ROIHeads needs MODEL.RESNETS.RES5_DILATION = 1")
    factor = 2**3  # res5 has 8x the channels of res2
    out_channels = r.RES2_OUT_CHANNELS * factor
    blocks = make_stage(
        num_blocks=3,
        first_stride=2,
        in_channels=out_channels // 2,
        out_channels=out_channels,
        bottleneck_channels=r.NUM_GROUPS * r.WIDTH_PER_GROUP * factor,
        num_groups=r.NUM_GROUPS,
        norm=_norm_factory(r.NORM),
        stride_in_1x1=r.STRIDE_IN_1X1,
        dilation=1,
    )
    return nn.Sequential(*blocks), out_channels


def roi_heads_common_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`ROIHeads` arguments: proposal matching and sampling for the losses."""
    h = cfg.MODEL.ROI_HEADS
    return dict(
        num_classes=h.NUM_CLASSES,
        batch_size_per_image=h.BATCH_SIZE_PER_IMAGE,
        positive_fraction=h.POSITIVE_FRACTION,
        proposal_matcher=Matcher(h.IOU_THRESHOLDS, h.IOU_LABELS, allow_low_quality_matches=False),
        proposal_append_gt=h.PROPOSAL_APPEND_GT,
    )


def res5_roi_heads_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """`Res5ROIHeads` (C4 models) arguments, its res5 stage and heads built."""
    h = cfg.MODEL.ROI_HEADS
    if cfg.MODEL.KEYPOINT_ON:
        raise ValueError(
            "keypoint heads need ROI_HEADS.NAME StandardROIHeads (FPN), not Res5ROIHeads"
        )
    in_shapes = [shapes[f] for f in h.IN_FEATURES]
    res5, out_channels = _res5_head(cfg)
    return dict(
        in_features=h.IN_FEATURES,
        pooler=_pooler(cfg.MODEL.ROI_BOX_HEAD, in_shapes),
        res5=res5,
        box_predictor=build_box_predictor(cfg, out_channels),
        mask_head=build_mask_head(cfg, out_channels) if cfg.MODEL.MASK_ON else None,
        **roi_heads_common_kwargs(cfg),
    )


def box_branch_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """The box branch of `StandardROIHeads`: features, pooler, head and predictor."""
    in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
    in_shapes = [shapes[f] for f in in_features]
    b = cfg.MODEL.ROI_BOX_HEAD
    res = b.POOLER_RESOLUTION
    channels = _known(in_shapes[0].channels, "channels")
    box_head = build_box_head(cfg, ShapeSpec(channels=channels, height=res, width=res))
    box_shape = cast(ShapeSpec, box_head.output_shape)  # a property of every box head
    return dict(
        box_in_features=in_features,
        box_pooler=_pooler(b, in_shapes),
        box_head=box_head,
        box_predictor=FastRCNNOutputLayers(**box_predictor_kwargs(cfg, box_shape)),
    )


def mask_branch_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """The mask branch of `StandardROIHeads` ({} when `MODEL.MASK_ON` is off)."""
    if not cfg.MODEL.MASK_ON:
        return {}
    in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
    in_shapes = [shapes[f] for f in in_features]
    return dict(
        mask_in_features=in_features,
        mask_pooler=_pooler(cfg.MODEL.ROI_MASK_HEAD, in_shapes),
        mask_head=build_mask_head(cfg, _known(in_shapes[0].channels, "channels")),
    )


def keypoint_branch_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """The keypoint branch of `StandardROIHeads` ({} when `MODEL.KEYPOINT_ON` is off)."""
    return build_keypoint_branch(cfg, [shapes[f] for f in cfg.MODEL.ROI_HEADS.IN_FEATURES])


def standard_roi_heads_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """`StandardROIHeads` (FPN models) arguments, its poolers and heads built."""
    return {
        **roi_heads_common_kwargs(cfg),
        **box_branch_kwargs(cfg, shapes),
        **mask_branch_kwargs(cfg, shapes),
        **keypoint_branch_kwargs(cfg, shapes),
    }


def cascade_roi_heads_kwargs(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> dict[str, Any]:
    """`CascadeROIHeads` arguments: one box head and predictor per stage
    (`cascade_heads_kwargs`), the mask and keypoint branches."""
    in_shapes = [shapes[f] for f in cfg.MODEL.ROI_HEADS.IN_FEATURES]
    b = cfg.MODEL.ROI_BOX_HEAD
    res = b.POOLER_RESOLUTION
    pooled = ShapeSpec(channels=_known(in_shapes[0].channels, "channels"), height=res, width=res)
    return cascade_heads_kwargs(
        cfg,
        lambda: cast(FastRCNNConvFCHead, build_box_head(cfg, pooled)),
        lambda size: build_box_predictor(cfg, size),
        box_in_features=cfg.MODEL.ROI_HEADS.IN_FEATURES,
        box_pooler=_pooler(b, in_shapes),
        **mask_branch_kwargs(cfg, shapes),
        **keypoint_branch_kwargs(cfg, shapes),
        **roi_heads_common_kwargs(cfg),
    )


def build_roi_heads(cfg: CfgNode, shapes: Mapping[str, ShapeSpec]) -> nn.Module:
    """The RoI heads of `MODEL.ROI_HEADS.NAME` (built in, or a registered user class)."""
    name = cfg.MODEL.ROI_HEADS.NAME
    if name == "Res5ROIHeads":
        return Res5ROIHeads(**res5_roi_heads_kwargs(cfg, shapes))
    if name == "StandardROIHeads":
        return StandardROIHeads(**standard_roi_heads_kwargs(cfg, shapes))
    if name == "CascadeROIHeads":
        return CascadeROIHeads(**cascade_roi_heads_kwargs(cfg, shapes))
    return _plugin(
        ROI_HEADS_REGISTRY,
        name,
        "MODEL.ROI_HEADS.NAME",
        cfg,
        dict(shapes),
        builtins=["StandardROIHeads", "CascadeROIHeads", "Res5ROIHeads"],
    )


def rcnn_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`GeneralizedRCNN` arguments, its backbone, proposal generator and RoI heads built."""
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals" and not cfg.MODEL.LOAD_PROPOSALS:
        logger.warning(
            "PROPOSAL_GENERATOR.NAME is PrecomputedProposals but MODEL.LOAD_PROPOSALS is False: "
            "the data loaders will give the model no proposals"
        )
    backbone = build_backbone(cfg)
    shapes = backbone.output_shape()
    return dict(
        backbone=backbone,
        # Fast R-CNN: no proposal generator; the inputs carry proposals from a file.
        proposal_generator=build_proposal_generator(cfg, shapes),
        roi_heads=build_roi_heads(cfg, shapes),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


def build_rcnn(cfg: CfgNode) -> GeneralizedRCNN:
    """Faster R-CNN / Mask R-CNN (FPN, C4 or DC5 layouts) from the config, or Fast R-CNN
    (`PROPOSAL_GENERATOR.NAME` "PrecomputedProposals": proposals come with the inputs)."""
    return GeneralizedRCNN(**rcnn_kwargs(cfg))


def proposal_network_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`ProposalNetwork` arguments, its backbone and RPN built."""
    backbone = build_backbone(cfg)
    return dict(
        backbone=backbone,
        proposal_generator=build_rpn(cfg, backbone.output_shape()),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


def build_proposal_network(cfg: CfgNode) -> ProposalNetwork:
    """A backbone and an RPN alone (Detectron2's `rpn_R_50_*` models)."""
    return ProposalNetwork(**proposal_network_kwargs(cfg))


META_ARCHITECTURES: dict[str, Callable[[CfgNode], nn.Module]] = {
    "GeneralizedRCNN": build_rcnn,
    "ProposalNetwork": build_proposal_network,
    "RetinaNet": build_retinanet,
    "PanopticFPN": build_panoptic_fpn,
}


def resolve_device(name: str) -> torch.device:
    """The device named by `MODEL.DEVICE`; a CUDA/MPS name on a machine without one falls
    back to the CPU with a warning instead of failing deep inside torch."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        # A log line, not a UserWarning: the fallback is expected on CPU-only machines.
        logger.warning("MODEL.DEVICE=%r but CUDA is not available; using the CPU", name)
        return torch.device("cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        logger.warning("MODEL.DEVICE=%r but MPS is not available; using the CPU", name)
        return torch.device("cpu")
    return device


def _as_cfgnode(cfg: Any) -> CfgNode:
    """A CfgNode for an OmegaConf DictConfig of a yacs-style config (Detectron2 accepts both)."""
    if isinstance(cfg, CfgNode):
        return cfg
    from masktron.config import get_cfg

    node = get_cfg()
    node._merge(OmegaConf.to_container(cfg), source="OmegaConf config")  # type: ignore[arg-type]
    return node


def build_model(cfg: CfgNode) -> nn.Module:
    """The model named by `MODEL.META_ARCHITECTURE` (built in, or a class registered in
    `META_ARCH_REGISTRY`), with random weights, on `MODEL.DEVICE`.

    Load weights with `DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)`.
    """
    cfg = _as_cfgnode(cfg)
    name = cfg.MODEL.META_ARCHITECTURE
    if name in META_ARCHITECTURES:
        model = META_ARCHITECTURES[name](cfg)
    else:
        model = _plugin(
            META_ARCH_REGISTRY,
            name,
            "MODEL.META_ARCHITECTURE",
            cfg,
            builtins=sorted(META_ARCHITECTURES),
        )
    model.to(resolve_device(cfg.MODEL.DEVICE))
    logger.debug("built %s", name)
    return model


# Detectron2's registries list the built-in parts too (those that build from a config).
for _registry, _parts in (
    (META_ARCH_REGISTRY, [GeneralizedRCNN, ProposalNetwork, RetinaNet, PanopticFPN]),
    (BACKBONE_REGISTRY, list(BACKBONES.values())),
    (PROPOSAL_GENERATOR_REGISTRY, [RPN]),
    (RPN_HEAD_REGISTRY, [StandardRPNHead]),
    (ROI_HEADS_REGISTRY, [StandardROIHeads, Res5ROIHeads, CascadeROIHeads]),
    (SEM_SEG_HEADS_REGISTRY, [SemSegFPNHead]),
    (ROI_BOX_HEAD_REGISTRY, [FastRCNNConvFCHead]),
    (ROI_MASK_HEAD_REGISTRY, [MaskRCNNConvUpsampleHead]),
):
    for _part in _parts:
        _registry.register(_part)

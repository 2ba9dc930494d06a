"""Building models from a config: the only code that reads `cfg.MODEL.*`.

`build_model(cfg)` picks the family by `MODEL.META_ARCHITECTURE` from a plain table; each
family's `build_*` function reads its keys and calls the constructors, so reading it shows the
architecture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from masktron.backbones.backbone import Backbone
from masktron.backbones.fpn import FPN, LastLevelMaxPool, LastLevelP6P7
from masktron.backbones.resnet import DEPTH_TO_BLOCKS, BasicStem, ResNet, make_stage
from masktron.config import CfgNode
from masktron.layers import ShapeSpec, get_norm
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.build_dense import build_panoptic_fpn, build_retinanet
from masktron.models.build_heads import build_cascade_roi_heads, build_keypoint_branch
from masktron.models.matcher import Matcher
from masktron.models.poolers import ROIPooler
from masktron.models.proposal_network import ProposalNetwork
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    Res5ROIHeads,
    StandardROIHeads,
)
from masktron.models.rpn import RPN, StandardRPNHead

logger = logging.getLogger(__name__)

_STAGE_INDEX = {"stem": 0, "res2": 1, "res3": 2, "res4": 3, "res5": 4}


def _known(value: int | None, what: str) -> int:
    """A ShapeSpec field that backbones and heads always fill (the dataclass allows None)."""
    assert value is not None, f"a feature map without {what}"
    return value


def _norm_factory(name: str) -> Callable[[int], nn.Module | None]:
    return lambda channels: get_norm(name, channels)


def build_resnet_backbone(cfg: CfgNode) -> ResNet:
    """ResNet/ResNeXt from `MODEL.RESNETS`; only the stages up to the last output are built."""
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
    stem = BasicStem(
        in_channels=len(cfg.MODEL.PIXEL_MEAN), out_channels=r.STEM_OUT_CHANNELS, norm=norm
    )
    num_stages = max(_STAGE_INDEX[f] for f in r.OUT_FEATURES)
    in_ch, out_ch = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for idx, num_blocks in enumerate(DEPTH_TO_BLOCKS[r.DEPTH][:num_stages]):
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


def build_resnet_fpn_backbone(cfg: CfgNode) -> FPN:
    """ResNet + FPN with a max-pooled P6 (R-CNN)."""
    return FPN(
        bottom_up=build_resnet_backbone(cfg),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def build_retinanet_resnet_fpn_backbone(cfg: CfgNode) -> FPN:
    """ResNet + FPN with P6/P7 convolved from C5 (RetinaNet)."""
    bottom_up = build_resnet_backbone(cfg)
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


BACKBONES: dict[str, Callable[[CfgNode], Backbone]] = {
    "build_resnet_backbone": build_resnet_backbone,
    "build_resnet_fpn_backbone": build_resnet_fpn_backbone,
    "build_retinanet_resnet_fpn_backbone": build_retinanet_resnet_fpn_backbone,
}


def build_backbone(cfg: CfgNode) -> Backbone:
    name = cfg.MODEL.BACKBONE.NAME
    if name not in BACKBONES:
        raise ValueError(f"MODEL.BACKBONE.NAME {name!r} is not one of {sorted(BACKBONES)}")
    return BACKBONES[name](cfg)


def build_anchor_generator(cfg: CfgNode, shapes: list[ShapeSpec]) -> DefaultAnchorGenerator:
    a = cfg.MODEL.ANCHOR_GENERATOR
    if a.NAME != "DefaultAnchorGenerator":
        raise ValueError(f"MODEL.ANCHOR_GENERATOR.NAME {a.NAME!r} is not supported")
    return DefaultAnchorGenerator(
        sizes=a.SIZES,
        aspect_ratios=a.ASPECT_RATIOS,
        strides=[_known(s.stride, "stride") for s in shapes],
        offset=a.OFFSET,
    )


def build_rpn(cfg: CfgNode, shapes: dict[str, ShapeSpec]) -> RPN:
    r = cfg.MODEL.RPN
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN" or r.HEAD_NAME != "StandardRPNHead":
        raise ValueError(
            "only PROPOSAL_GENERATOR.NAME=RPN with RPN.HEAD_NAME=StandardRPNHead is supported"
        )
    in_shapes = [shapes[f] for f in r.IN_FEATURES]
    if len({s.channels for s in in_shapes}) != 1:
        raise ValueError(f"RPN inputs {r.IN_FEATURES} must have the same number of channels")
    anchors = build_anchor_generator(cfg, in_shapes)
    if len(set(anchors.num_cell_anchors)) != 1:
        raise ValueError("the RPN head needs the same number of anchors per cell at every level")
    return RPN(
        in_features=r.IN_FEATURES,
        head=StandardRPNHead(
            in_channels=_known(in_shapes[0].channels, "channels"),
            num_anchors=anchors.num_cell_anchors[0],
            conv_dims=r.CONV_DIMS,
        ),
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


def build_box_predictor(cfg: CfgNode, input_size: int) -> FastRCNNOutputLayers:
    b = cfg.MODEL.ROI_BOX_HEAD
    if b.USE_SIGMOID_CE or b.USE_FED_LOSS:
        raise ValueError("ROI_BOX_HEAD.USE_SIGMOID_CE / USE_FED_LOSS are not supported")
    return FastRCNNOutputLayers(
        input_size=input_size,
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


def build_mask_head(cfg: CfgNode, in_channels: int) -> MaskRCNNConvUpsampleHead:
    m = cfg.MODEL.ROI_MASK_HEAD
    if m.NAME != "MaskRCNNConvUpsampleHead":
        raise ValueError(f"ROI_MASK_HEAD.NAME {m.NAME!r} is not supported")
    return MaskRCNNConvUpsampleHead(
        input_shape=ShapeSpec(channels=in_channels),
        num_classes=1 if m.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        conv_dims=[m.CONV_DIM] * (m.NUM_CONV + 1),
        conv_norm=m.NORM,
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


def build_roi_heads(cfg: CfgNode, shapes: dict[str, ShapeSpec]) -> nn.Module:
    h = cfg.MODEL.ROI_HEADS
    common = dict(
        num_classes=h.NUM_CLASSES,
        batch_size_per_image=h.BATCH_SIZE_PER_IMAGE,
        positive_fraction=h.POSITIVE_FRACTION,
        proposal_matcher=Matcher(h.IOU_THRESHOLDS, h.IOU_LABELS, allow_low_quality_matches=False),
        proposal_append_gt=h.PROPOSAL_APPEND_GT,
    )
    in_shapes = [shapes[f] for f in h.IN_FEATURES]
    channels = _known(in_shapes[0].channels, "channels")
    if h.NAME == "Res5ROIHeads":
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError(
                "keypoint heads need ROI_HEADS.NAME StandardROIHeads (FPN), not Res5ROIHeads"
            )
        res5, out_channels = _res5_head(cfg)
        return Res5ROIHeads(
            in_features=h.IN_FEATURES,
            pooler=_pooler(cfg.MODEL.ROI_BOX_HEAD, in_shapes),
            res5=res5,
            box_predictor=build_box_predictor(cfg, out_channels),
            mask_head=build_mask_head(cfg, out_channels) if cfg.MODEL.MASK_ON else None,
            **common,
        )
    if h.NAME not in ("StandardROIHeads", "CascadeROIHeads"):
        raise ValueError(
            f"MODEL.ROI_HEADS.NAME {h.NAME!r} is not one of StandardROIHeads, CascadeROIHeads, "
            "Res5ROIHeads"
        )
    b = cfg.MODEL.ROI_BOX_HEAD
    if b.NAME != "FastRCNNConvFCHead":
        raise ValueError(f"ROI_BOX_HEAD.NAME {b.NAME!r} is not supported")
    res = b.POOLER_RESOLUTION

    def make_box_head() -> FastRCNNConvFCHead:
        return FastRCNNConvFCHead(
            input_shape=ShapeSpec(channels=channels, height=res, width=res),
            conv_dims=[b.CONV_DIM] * b.NUM_CONV,
            fc_dims=[b.FC_DIM] * b.NUM_FC,
            conv_norm=b.NORM,
        )

    mask_on = cfg.MODEL.MASK_ON
    heads: dict = dict(
        box_in_features=h.IN_FEATURES,
        box_pooler=_pooler(b, in_shapes),
        mask_in_features=h.IN_FEATURES if mask_on else None,
        mask_pooler=_pooler(cfg.MODEL.ROI_MASK_HEAD, in_shapes) if mask_on else None,
        mask_head=build_mask_head(cfg, channels) if mask_on else None,
        **build_keypoint_branch(cfg, in_shapes),
        **common,
    )
    if h.NAME == "CascadeROIHeads":
        return build_cascade_roi_heads(
            cfg, make_box_head, lambda size: build_box_predictor(cfg, size), **heads
        )
    box_head = make_box_head()
    return StandardROIHeads(
        box_head=box_head,
        box_predictor=build_box_predictor(cfg, _known(box_head.output_shape.channels, "channels")),
        **heads,
    )


def build_rcnn(cfg: CfgNode) -> GeneralizedRCNN:
    """Faster R-CNN / Mask R-CNN (FPN, C4 or DC5 layouts) from the config, or Fast R-CNN
    (`PROPOSAL_GENERATOR.NAME` "PrecomputedProposals": proposals come with the inputs)."""
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name not in ("RPN", "PrecomputedProposals"):
        raise ValueError(
            f"MODEL.PROPOSAL_GENERATOR.NAME {name!r} is not one of 'RPN', 'PrecomputedProposals'"
        )
    if name == "PrecomputedProposals" and not cfg.MODEL.LOAD_PROPOSALS:
        logger.warning(
            "PROPOSAL_GENERATOR.NAME is PrecomputedProposals but MODEL.LOAD_PROPOSALS is False: "
            "the data loaders will give the model no proposals"
        )
    backbone = build_backbone(cfg)
    shapes = backbone.output_shape()
    return GeneralizedRCNN(
        backbone=backbone,
        # Fast R-CNN: no proposal generator; the inputs carry proposals from a file.
        proposal_generator=build_rpn(cfg, shapes) if name == "RPN" else None,
        roi_heads=build_roi_heads(cfg, shapes),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


def build_proposal_network(cfg: CfgNode) -> ProposalNetwork:
    """A backbone and an RPN alone (Detectron2's `rpn_R_50_*` models)."""
    backbone = build_backbone(cfg)
    return ProposalNetwork(
        backbone=backbone,
        proposal_generator=build_rpn(cfg, backbone.output_shape()),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        input_format=cfg.INPUT.FORMAT,
    )


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


def build_model(cfg: CfgNode) -> nn.Module:
    """The model named by `MODEL.META_ARCHITECTURE`, with random weights, on `MODEL.DEVICE`.

    Load weights with `DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)`.
    """
    name = cfg.MODEL.META_ARCHITECTURE
    if name not in META_ARCHITECTURES:
        raise ValueError(
            f"MODEL.META_ARCHITECTURE {name!r} is not one of {sorted(META_ARCHITECTURES)}"
        )
    model = META_ARCHITECTURES[name](cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    logger.debug("built %s", name)
    return model

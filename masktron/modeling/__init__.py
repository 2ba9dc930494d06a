"""Detectron2's `detectron2.modeling` import path, re-exported from `masktron.models`.

The submodules (`masktron.modeling.roi_heads`, `.backbone.fpn`, `.poolers`, ...) mirror
Detectron2's module paths; the code lives in `masktron.models` and `masktron.backbones`.
"""

from masktron.backbones.backbone import Backbone
from masktron.backbones.fpn import FPN
from masktron.backbones.resnet import BasicStem, BottleneckBlock, ResNet, make_stage
from masktron.layers import ShapeSpec
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.build import (
    build_anchor_generator,
    build_backbone,
    build_box_head,
    build_mask_head,
    build_model,
    build_proposal_generator,
    build_resnet_backbone,
    build_roi_heads,
    build_rpn_head,
)
from masktron.models.build_dense import build_sem_seg_head
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.postprocessing import detector_postprocess, sem_seg_postprocess
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
    ROIHeads,
    StandardROIHeads,
)
from masktron.models.roi_heads.mask_head import BaseMaskRCNNHead
from masktron.models.rpn import RPN, StandardRPNHead
from masktron.models.sem_seg_head import SemSegFPNHead
from masktron.models.tta import DatasetMapperTTA, GeneralizedRCNNWithTTA

__all__ = [
    "DatasetMapperTTA",
    "GeneralizedRCNNWithTTA",
    "BACKBONE_REGISTRY",
    "FPN",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "RPN",
    "RPN_HEAD_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "Backbone",
    "BaseMaskRCNNHead",
    "BasicStem",
    "BottleneckBlock",
    "DefaultAnchorGenerator",
    "FastRCNNConvFCHead",
    "FastRCNNOutputLayers",
    "GeneralizedRCNN",
    "MaskRCNNConvUpsampleHead",
    "PanopticFPN",
    "ProposalNetwork",
    "ROIHeads",
    "Res5ROIHeads",
    "ResNet",
    "RetinaNet",
    "SemSegFPNHead",
    "ShapeSpec",
    "StandardROIHeads",
    "StandardRPNHead",
    "build_anchor_generator",
    "build_backbone",
    "build_box_head",
    "build_mask_head",
    "build_model",
    "build_proposal_generator",
    "build_resnet_backbone",
    "build_roi_heads",
    "build_rpn_head",
    "build_sem_seg_head",
    "detector_postprocess",
    "make_stage",
    "sem_seg_postprocess",
]

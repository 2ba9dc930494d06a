"""Mask R-CNN with a ResNet-50 FPN backbone, as a LazyConfig (Detectron2's
`configs/common/models/mask_rcnn_fpn.py` layout: the same tree of keys, so overrides such as
`model.backbone.bottom_up.stages.depth = 101` or `model.roi_heads.num_classes = 3` port).

Defaults are those of Detectron2's `mask_rcnn_R_50_FPN` YAML configs: FrozenBN ResNet with the
stride in the first 1x1 conv (MSRA weights), 5 anchor levels, a 2-fc box head, a 4-conv mask head.
"""

from masktron.backbones.fpn import FPN, LastLevelMaxPool
from masktron.backbones.resnet import BasicStem, ResNet
from masktron.config import LazyCall as L
from masktron.layers import ShapeSpec
from masktron.models.anchors import DefaultAnchorGenerator
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.matcher import Matcher
from masktron.models.poolers import ROIPooler
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    StandardROIHeads,
)
from masktron.models.rpn import RPN, StandardRPNHead

# FPN levels p2..p5 pool RoIs at these scales (1 / stride).
_POOLER_SCALES = (1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32)

model = L(GeneralizedRCNN)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=True, norm="FrozenBN"),
            out_features=["res2", "res3", "res4", "res5"],
        ),
        # whatever the bottom-up network outputs (res2..res5, or RegNet's s1..s4)
        in_features="${.bottom_up.out_features}",
        out_channels=256,
        top_block=L(LastLevelMaxPool)(),
    ),
    proposal_generator=L(RPN)(
        in_features=["p2", "p3", "p4", "p5", "p6"],
        head=L(StandardRPNHead)(in_channels=256, num_anchors=3),
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[32], [64], [128], [256], [512]],
            aspect_ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64],
            offset=0.0,
        ),
        anchor_matcher=L(Matcher)(
            thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True
        ),
        box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(2000, 1000),
        post_nms_topk=(1000, 1000),
        nms_thresh=0.7,
    ),
    roi_heads=L(StandardROIHeads)(
        num_classes=80,
        batch_size_per_image=512,
        positive_fraction=0.25,
        proposal_matcher=L(Matcher)(
            thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False
        ),
        box_in_features=["p2", "p3", "p4", "p5"],
        box_pooler=L(ROIPooler)(
            output_size=7, scales=_POOLER_SCALES, sampling_ratio=0, pooler_type="ROIAlignV2"
        ),
        box_head=L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[],
            fc_dims=[1024, 1024],
        ),
        box_predictor=L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            test_score_thresh=0.05,
            box2box_transform=L(Box2BoxTransform)(weights=(10, 10, 5, 5)),
            num_classes="${..num_classes}",
        ),
        mask_in_features=["p2", "p3", "p4", "p5"],
        mask_pooler=L(ROIPooler)(
            output_size=14, scales=_POOLER_SCALES, sampling_ratio=0, pooler_type="ROIAlignV2"
        ),
        mask_head=L(MaskRCNNConvUpsampleHead)(
            input_shape=ShapeSpec(channels=256, width=14, height=14),
            num_classes="${..num_classes}",
            conv_dims=[256, 256, 256, 256, 256],
        ),
    ),
    # BGR, Caffe2 means and unit std: the MSRA ImageNet weights' input
    pixel_mean=[103.530, 116.280, 123.675],
    pixel_std=[1.0, 1.0, 1.0],
    input_format="BGR",
)

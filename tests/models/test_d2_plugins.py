"""Detectron2's module paths, `X(cfg, input_shape)` constructors and registries for user parts."""

import importlib

import pytest
import torch
from torch import nn

from masktron import model_zoo
from masktron.config import CfgNode
from masktron.layers import ShapeSpec
from masktron.modeling import (
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    Backbone,
    BaseMaskRCNNHead,
    DefaultAnchorGenerator,
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    GeneralizedRCNN,
    MaskRCNNConvUpsampleHead,
    StandardROIHeads,
    build_model,
    build_proposal_generator,
)
from masktron.modeling.proposal_generator import RPN, StandardRPNHead
from masktron.utils.registry import Registry

# Detectron2 module path -> names it exposes there (a selection users import).
PATHS = {
    "modeling.anchor_generator": ["DefaultAnchorGenerator", "build_anchor_generator"],
    "modeling.box_regression": ["Box2BoxTransform"],
    "modeling.matcher": ["Matcher"],
    "modeling.poolers": ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"],
    "modeling.postprocessing": ["detector_postprocess", "sem_seg_postprocess"],
    "modeling.backbone": ["Backbone", "BACKBONE_REGISTRY", "FPN", "ResNet", "build_backbone"],
    "modeling.backbone.resnet": ["BasicStem", "BottleneckBlock", "ResNet", "make_stage"],
    "modeling.backbone.fpn": ["FPN", "LastLevelMaxPool", "build_resnet_fpn_backbone"],
    "modeling.proposal_generator": ["RPN", "PROPOSAL_GENERATOR_REGISTRY", "RPN_HEAD_REGISTRY"],
    "modeling.proposal_generator.rpn": ["RPN", "StandardRPNHead", "build_rpn_head"],
    "modeling.roi_heads": ["ROI_HEADS_REGISTRY", "StandardROIHeads", "build_roi_heads"],
    "modeling.roi_heads.fast_rcnn": ["FastRCNNOutputLayers", "fast_rcnn_inference"],
    "modeling.roi_heads.mask_head": ["BaseMaskRCNNHead", "mask_rcnn_loss", "build_mask_head"],
    "modeling.meta_arch": ["META_ARCH_REGISTRY", "GeneralizedRCNN", "build_model"],
    "modeling.meta_arch.rcnn": ["GeneralizedRCNN", "ProposalNetwork"],
    "utils.events": ["EventStorage", "get_event_storage", "has_event_storage", "JSONWriter"],
    "utils.logger": ["setup_logger", "log_first_n", "log_every_n_seconds"],
    "utils.comm": ["get_world_size", "get_rank", "all_gather", "synchronize"],
    "utils.file_io": ["PathManager"],
    "checkpoint.c2_model_loading": ["align_and_update_state_dicts"],
    "evaluation.fast_eval_api": ["COCOeval_opt"],
    "data.samplers": ["TrainingSampler", "InferenceSampler", "RepeatFactorTrainingSampler"],
    "layers.wrappers": ["Conv2d", "cat", "nonzero_tuple", "cross_entropy", "shapes_to_tensor"],
    "layers.mask_ops": ["paste_masks_in_image"],
}


def test_detectron2_module_paths_re_export_the_same_objects():
    from masktron import models

    for path, names in PATHS.items():
        module = importlib.import_module(f"masktron.{path}")
        for name in names:
            assert hasattr(module, name), f"masktron.{path} lacks {name}"
    # Re-exports, not copies.
    assert importlib.import_module("masktron.modeling.roi_heads").StandardROIHeads is (
        models.roi_heads.StandardROIHeads
    )


def tiny_cfg():
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    return cfg


SHAPES = {f"p{k}": ShapeSpec(channels=8, stride=2**k) for k in range(2, 7)}


def names_and_shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_cfg_constructors_match_the_builders():
    cfg = tiny_cfg()
    model = build_model(cfg)
    assert names_and_shapes(RPN(cfg, SHAPES)) == names_and_shapes(model.proposal_generator)
    assert names_and_shapes(StandardROIHeads(cfg, SHAPES)) == names_and_shapes(model.roi_heads)
    assert names_and_shapes(GeneralizedRCNN(cfg)) == names_and_shapes(model)
    pooled = ShapeSpec(channels=8, height=7, width=7)
    box_head = FastRCNNConvFCHead(cfg, pooled)
    assert box_head.output_shape.channels == 16
    predictor = FastRCNNOutputLayers(cfg, box_head.output_shape)
    assert predictor.cls_score.out_features == 4 and predictor.bbox_pred.out_features == 12
    # keyword arguments override what the config says
    assert FastRCNNOutputLayers(cfg, 16, num_classes=7).cls_score.out_features == 8
    mask_head = MaskRCNNConvUpsampleHead(cfg, ShapeSpec(channels=8, height=14, width=14))
    assert mask_head.predictor.out_channels == 3
    rpn_head = StandardRPNHead(cfg, list(SHAPES.values()))
    assert rpn_head.objectness_logits.out_channels == 3
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    assert build_proposal_generator(cfg, SHAPES) is None


def test_flat_anchor_sizes_apply_to_every_level():
    cfg = tiny_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [32, 64]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [0.5, 1.0, 2.0]
    gen = DefaultAnchorGenerator(cfg, [SHAPES["p2"], SHAPES["p3"], SHAPES["p4"]])
    assert gen.num_cell_anchors == [6, 6, 6]
    # Python-side default offset is Detectron2's 0.5: the first anchor is centred in its cell.
    plain = DefaultAnchorGenerator(sizes=[8], aspect_ratios=[1.0], strides=[4])
    (boxes,) = plain([torch.zeros(1, 1, 2, 2)])
    assert boxes.tensor[0].tolist() == [-2.0, -2.0, 6.0, 6.0]
    with pytest.raises(ValueError, match="2 lists for 3 feature levels"):
        DefaultAnchorGenerator(sizes=[[8], [16]], aspect_ratios=[1.0], strides=[4, 8, 16])


class _TinyBackbone(Backbone):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 3, stride=4, padding=1)

    def forward(self, x):
        return {"p2": self.conv(x)}

    def output_shape(self):
        return {"p2": ShapeSpec(channels=8, stride=4)}


def test_registered_user_parts_are_built_by_name():
    @BACKBONE_REGISTRY.register()
    def build_tiny_test_backbone(cfg, input_shape):
        return _TinyBackbone(input_shape.channels)

    @ROI_BOX_HEAD_REGISTRY.register()
    class TinyTestBoxHead(FastRCNNConvFCHead):
        pass

    @ROI_MASK_HEAD_REGISTRY.register()
    class TinyTestMaskHead(BaseMaskRCNNHead):
        def __init__(self, cfg, input_shape):
            super().__init__()
            self.predictor = nn.Conv2d(input_shape.channels, cfg.MODEL.ROI_HEADS.NUM_CLASSES, 1)

        def layers(self, x):
            return self.predictor(x)

    @ROI_HEADS_REGISTRY.register()
    class TinyTestROIHeads(StandardROIHeads):
        pass

    @META_ARCH_REGISTRY.register()
    class TinyTestRCNN(GeneralizedRCNN):
        pass

    cfg = tiny_cfg()
    cfg.MODEL.META_ARCHITECTURE = "TinyTestRCNN"
    cfg.MODEL.BACKBONE.NAME = "build_tiny_test_backbone"
    cfg.MODEL.RPN.IN_FEATURES = ["p2"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32]]
    cfg.MODEL.ROI_HEADS.NAME = "TinyTestROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2"]
    cfg.MODEL.ROI_BOX_HEAD.NAME = "TinyTestBoxHead"
    cfg.MODEL.ROI_MASK_HEAD.NAME = "TinyTestMaskHead"
    model = build_model(cfg).eval()
    assert type(model).__name__ == "TinyTestRCNN"
    assert isinstance(model.backbone, _TinyBackbone)
    assert type(model.roi_heads).__name__ == "TinyTestROIHeads"
    assert type(model.roi_heads.box_head).__name__ == "TinyTestBoxHead"
    assert type(model.roi_heads.mask_head).__name__ == "TinyTestMaskHead"
    with torch.no_grad():
        (out,) = model([{"image": torch.zeros(3, 64, 64)}])
    assert out["instances"].image_size == (64, 64)
    with pytest.raises(KeyError, match="already registered"):
        ROI_HEADS_REGISTRY.register(TinyTestROIHeads)
    assert ROI_HEADS_REGISTRY.get("StandardROIHeads") is StandardROIHeads


def test_registry_basics():
    registry = Registry("THINGS")
    registry.register(CfgNode)
    assert "CfgNode" in registry and registry.get("CfgNode") is CfgNode
    assert dict(registry) == {"CfgNode": CfgNode}
    with pytest.raises(KeyError, match="THINGS"):
        registry.get("Missing")

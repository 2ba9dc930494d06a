"""Name conversion (Caffe2, torchvision), suffix matching and key reports, unit by unit."""

from __future__ import annotations

import pytest
import torch

from masktron.checkpoint.c2_names import convert_c2_name, convert_c2_names
from masktron.checkpoint.matching import (
    align_by_suffix,
    group_keys,
    missing_keys_message,
    strip_prefix_if_present,
    unexpected_keys_message,
)
from masktron.checkpoint.torchvision_names import (
    convert_torchvision_resnet_names,
    is_torchvision_resnet,
)
from masktron.checkpoint.weights_only import check_weights_only

# Caffe2 / Detectron1 blob -> masktron name suffix, as COMPAT.md and Detectron2 define them.
C2_NAMES = {
    "conv1_w": "stem.conv1.weight",
    "res_conv1_bn_s": "stem.conv1.norm.weight",
    "res_conv1_bn_b": "stem.conv1.norm.bias",
    "res2_0_branch1_w": "res2.0.shortcut.weight",
    "res2_0_branch1_bn_s": "res2.0.shortcut.norm.weight",
    "res2_0_branch1_bn_b": "res2.0.shortcut.norm.bias",
    "res2_0_branch2a_w": "res2.0.conv1.weight",
    "res2_0_branch2a_bn_s": "res2.0.conv1.norm.weight",
    "res2_0_branch2b_bn_b": "res2.0.conv2.norm.bias",
    "res2_0_branch2c_w": "res2.0.conv3.weight",
    "res4_22_branch2a_bn_rm": "res4.22.conv1.norm.running_mean",
    "res4_22_branch2a_bn_riv": "res4.22.conv1.norm.running_var",
    "res3_1_branch2a_bn_gamma": "res3.1.conv1.norm.weight",
    "res3_1_branch2a_bn_beta": "res3.1.conv1.norm.bias",
    "res3_1_branch2a_gn_s": "res3.1.conv1.norm.weight",
    "fpn_inner_res5_2_sum_w": "fpn_lateral5.weight",
    "fpn_inner_res2_2_sum_lateral_b": "fpn_lateral2.bias",
    "fpn_res4_5_sum_w": "fpn_output4.weight",
    "fpn_res3_3_sum_b": "fpn_output3.bias",
    "fpn_inner_res3_3_sum_lateral_gn_s": "fpn_lateral3.norm.weight",
    "conv_rpn_fpn2_w": "proposal_generator.rpn_head.conv.weight",
    "rpn_cls_logits_fpn2_w": "proposal_generator.rpn_head.objectness_logits.weight",
    "rpn_bbox_pred_fpn2_b": "proposal_generator.rpn_head.anchor_deltas.bias",
    "conv_rpn_w": "proposal_generator.rpn_head.conv.weight",
    "rpn_cls_logits_b": "proposal_generator.rpn_head.objectness_logits.bias",
    "fc6_w": "box_head.fc1.weight",
    "fc7_b": "box_head.fc2.bias",
    "head_conv1_w": "box_head.conv1.weight",
    "cls_score_w": "cls_score.weight",
    "bbox_pred_b": "bbox_pred.bias",
    "_[mask]_fcn1_w": "mask_head.mask_fcn1.weight",
    "_[mask]_fcn4_b": "mask_head.mask_fcn4.bias",
    "conv5_mask_w": "mask_head.deconv.weight",
    "mask_fcn_logits_w": "mask_head.predictor.weight",
    "res5_0_branch2a_w": "res5.0.conv1.weight",  # C4 box head
    "conv_fcn1_w": "roi_heads.keypoint_head.conv_fcn1.weight",
    "kps_score_lowres_b": "roi_heads.keypoint_head.score_lowres.bias",
}


@pytest.mark.parametrize("c2, expected", sorted(C2_NAMES.items()))
def test_c2_name(c2, expected):
    assert convert_c2_name(c2) == expected


def test_c2_detectron1_class_layout():
    k = 3  # classes without background
    cls = torch.arange(k + 1, dtype=torch.float32)[:, None].repeat(1, 2)  # row i holds i
    box = torch.arange(4 * (k + 1), dtype=torch.float32)[:, None]
    mask = torch.arange(k + 1, dtype=torch.float32)[:, None, None, None]
    weights = {"cls_score_w": cls, "bbox_pred_w": box, "mask_fcn_logits_w": mask, "fc1000_w": cls}
    out, original = convert_c2_names(weights)
    assert out["cls_score.weight"][:, 0].tolist() == [1, 2, 3, 0]  # background last
    assert out["bbox_pred.weight"][:, 0].tolist() == list(range(4, 16))  # background box dropped
    assert out["mask_head.predictor.weight"].flatten().tolist() == [1, 2, 3]
    assert "fc1000.weight" not in out and len(out) == 3  # the ImageNet classifier is dropped
    assert original["cls_score.weight"] == "cls_score_w"


def test_c2_collision_is_an_error():
    with pytest.raises(ValueError, match="both map to"):
        convert_c2_names({"res_conv1_bn_s": torch.ones(1), "res_conv1_bn_gamma": torch.ones(1)})


def test_torchvision_names():
    names = {
        "conv1.weight": "stem.conv1.weight",
        "bn1.weight": "stem.conv1.norm.weight",
        "bn1.running_var": "stem.conv1.norm.running_var",
        "layer1.0.conv1.weight": "res2.0.conv1.weight",
        "layer1.0.bn3.bias": "res2.0.conv3.norm.bias",
        "layer2.0.downsample.0.weight": "res3.0.shortcut.weight",
        "layer2.0.downsample.1.running_mean": "res3.0.shortcut.norm.running_mean",
        "layer4.2.bn2.weight": "res5.2.conv2.norm.weight",
    }
    weights = {k: torch.zeros(1) for k in [*names, "fc.weight", "bn1.num_batches_tracked"]}
    assert is_torchvision_resnet(weights)
    out, original = convert_torchvision_resnet_names(weights)
    assert {original[v]: v for v in out} == names
    assert not is_torchvision_resnet(["stem.conv1.weight", "res2.0.conv1.weight"])


def test_longest_suffix_wins_and_components_are_whole():
    model = {
        "backbone.bottom_up.stem.conv1.weight": (2,),
        "backbone.bottom_up.res2.0.conv1.weight": (2,),
        "roi_heads.mask_head.mask_fcn1.weight": (2,),
        "roi_heads.res5.0.conv1.weight": (2,),
    }
    ckpt = {
        "stem.conv1.weight": torch.full((2,), 1.0),
        "res2.0.conv1.weight": torch.full((2,), 2.0),
        "fcn1.weight": torch.full((2,), 3.0),  # a partial component: must not match mask_fcn1
        "res5.0.conv1.weight": torch.full((2,), 4.0),
    }
    result = align_by_suffix(model, ckpt)
    assert result.sources == {
        "backbone.bottom_up.stem.conv1.weight": "stem.conv1.weight",
        "backbone.bottom_up.res2.0.conv1.weight": "res2.0.conv1.weight",
        "roi_heads.res5.0.conv1.weight": "res5.0.conv1.weight",
    }
    assert result.unexpected_keys == ["fcn1.weight"]


def test_exact_names_match_themselves_and_shapes_are_checked():
    model = {"a.weight": (2, 3), "b.weight": (4,)}
    ckpt = {"a.weight": torch.zeros(2, 3), "b.weight": torch.zeros(5)}
    result = align_by_suffix(model, ckpt, {"b.weight": "b_w"})
    assert list(result.state_dict) == ["a.weight"]
    assert result.incorrect_shapes == [("b.weight", (5,), (4,))]
    assert result.unexpected_keys == []  # a skipped shape is reported once, as a shape


def test_one_tensor_for_two_model_names_is_an_error():
    model = {"x.conv1.weight": (2,), "y.conv1.weight": (2,)}
    with pytest.raises(ValueError, match="matches two model names"):
        align_by_suffix(model, {"conv1.weight": torch.zeros(2)})


def test_reports_group_by_prefix():
    keys = ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias"]
    keys += ["backbone.fpn_lateral2.weight", "pixel_mean"]
    assert group_keys(keys) == {
        "roi_heads.box_predictor.cls_score": ["weight", "bias"],
        "backbone.fpn_lateral2": ["weight"],
        "pixel_mean": [],
    }
    msg = missing_keys_message(keys)
    assert "not found in the checkpoint" in msg
    assert "  roi_heads.box_predictor.cls_score.{weight, bias}" in msg.splitlines()
    assert "  backbone.fpn_lateral2.weight" in msg.splitlines()
    assert "not used by the model" in unexpected_keys_message(keys)


def test_strip_prefix_only_when_all_names_have_it():
    assert strip_prefix_if_present({"module.a": 1, "module.b": 2}, "module.") == {"a": 1, "b": 2}
    assert strip_prefix_if_present({"module.a": 1, "b": 2}, "module.") == {"module.a": 1, "b": 2}


def test_weights_only_check_names_the_entry():
    check_weights_only({"model": {"w": torch.zeros(1)}, "it": 3, "x": [1.5, "s", None, (1,)]})
    with pytest.raises(TypeError, match=r"checkpoint\['scheduler'\]\['fn'\]"):
        check_weights_only({"scheduler": {"fn": lambda x: x}})

"""DetectionCheckpointer.load on every accepted format, with the reports a user sees."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
import torchvision
from ckpt_helpers import UNLOADED, TensorTree, random_arrays

from masktron.checkpoint import DetectionCheckpointer

LOGGER = "masktron.checkpoint"


def _zoo_pkl(path, weights: dict[str, np.ndarray], **extra) -> str:
    with open(path, "wb") as f:
        data = {"model": weights, "__author__": "Detectron2 Model Zoo", **extra}
        pickle.dump(data, f)
    return str(path)


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_model_zoo_pkl_loads_every_name_exactly(tmp_path, small_d2_shapes, caplog):
    weights = random_arrays(small_d2_shapes)
    path = _zoo_pkl(tmp_path / "model_final_f10217.pkl", weights, matching_heuristics=False)
    model = TensorTree(small_d2_shapes)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        extra = DetectionCheckpointer(model).load(path)
    loaded = _state(model)
    assert loaded.keys() == weights.keys() and len(loaded) == 307
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    assert extra["__author__"] == "Detectron2 Model Zoo"
    assert _warnings(caplog) == ""


@pytest.mark.slow
def test_model_zoo_pkl_full_size(tmp_path, d2_shapes):
    """The real checkpoint's 307 tensors at their real shapes (44M values, 178 MB)."""
    weights = random_arrays(d2_shapes, seed=1)
    path = _zoo_pkl(tmp_path / "model_final_f10217.pkl", weights)
    model = TensorTree(d2_shapes)
    DetectionCheckpointer(model).load(path)
    loaded = _state(model)
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_reheaded_model_skips_shapes_with_warning(tmp_path, small_d2_shapes, caplog):
    shapes = dict(small_d2_shapes)
    shapes["roi_heads.box_predictor.cls_score.weight"] = (11, 3)  # 10 classes + background
    shapes["roi_heads.box_predictor.cls_score.bias"] = (11,)
    weights = random_arrays(small_d2_shapes)
    path = _zoo_pkl(tmp_path / "zoo.pkl", weights)
    model = TensorTree(shapes)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        DetectionCheckpointer(model).load(path)
    loaded = _state(model)
    assert (loaded["roi_heads.box_predictor.cls_score.weight"] == UNLOADED).all()
    np.testing.assert_array_equal(
        loaded["roi_heads.box_predictor.bbox_pred.weight"],
        weights["roi_heads.box_predictor.bbox_pred.weight"],
    )
    text = _warnings(caplog)
    assert "Skip loading parameter 'roi_heads.box_predictor.cls_score.weight'" in text
    assert "(3, 3) in the checkpoint but (11, 3) in the model" in text


def test_missing_and_unexpected_are_reported_grouped(tmp_path, small_d2_shapes, caplog):
    weights = random_arrays(small_d2_shapes)
    for name in [n for n in weights if n.startswith("roi_heads.mask_head.")]:
        del weights[name]
    weights["roi_heads.keypoint_head.conv_fcn1.weight"] = np.zeros((2, 2), np.float32)
    weights["roi_heads.keypoint_head.conv_fcn1.bias"] = np.zeros(2, np.float32)
    model = TensorTree(small_d2_shapes)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        DetectionCheckpointer(model).load(_zoo_pkl(tmp_path / "zoo.pkl", weights))
    lines = _warnings(caplog).splitlines()
    assert "Some model parameters or buffers are not found in the checkpoint:" in lines
    assert "  roi_heads.mask_head.mask_fcn1.{weight, bias}" in lines
    assert "  roi_heads.mask_head.predictor.{weight, bias}" in lines
    assert "The checkpoint contains keys that are not used by the model:" in lines
    assert "  roi_heads.keypoint_head.conv_fcn1.{weight, bias}" in lines


def _imagenet_c2_blobs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """An MSRA-style R-50 file: stem, res2.0 (with shortcut), res2.1, res5.0; affine BN only."""
    blobs = {"conv1_w": (64, 3, 7, 7), "res_conv1_bn_s": (64,), "res_conv1_bn_b": (64,)}
    blocks = {"res2_0": (64, 64, 256), "res2_1": (256, 64, 256), "res5_0": (1024, 512, 2048)}
    for block, (cin, mid, cout) in blocks.items():
        convs = {"branch2a": (mid, cin, 1, 1), "branch2b": (mid, mid, 3, 3)}
        convs["branch2c"] = (cout, mid, 1, 1)
        if block.endswith("_0"):
            convs["branch1"] = (cout, cin, 1, 1)
        for conv, shape in convs.items():
            blobs[f"{block}_{conv}_w"] = shape
            blobs[f"{block}_{conv}_bn_s"] = blobs[f"{block}_{conv}_bn_b"] = (shape[0],)
    blobs |= {"fc1000_w": (1000, 2048), "fc1000_b": (1000,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in blobs.items()}


def _c4_model() -> TensorTree:
    """A C4 layout: stem and res2 in the backbone, res5 in the RoI heads (as Detectron2's)."""
    shapes: dict[str, tuple[int, ...]] = {"backbone.bottom_up.stem.conv1.weight": (64, 3, 7, 7)}
    for stat in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"backbone.bottom_up.stem.conv1.norm.{stat}"] = (64,)
    layers = {
        "backbone.bottom_up.res2.0": (64, 64, 256, True),
        "backbone.bottom_up.res2.1": (256, 64, 256, False),
        "roi_heads.res5.0": (1024, 512, 2048, True),
    }
    for prefix, (cin, mid, cout, shortcut) in layers.items():
        convs = {"conv1": (mid, cin, 1, 1), "conv2": (mid, mid, 3, 3), "conv3": (cout, mid, 1, 1)}
        if shortcut:
            convs["shortcut"] = (cout, cin, 1, 1)
        for conv, shape in convs.items():
            shapes[f"{prefix}.{conv}.weight"] = shape
            for stat in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}.{conv}.norm.{stat}"] = (shape[0],)
    shapes["roi_heads.box_predictor.cls_score.weight"] = (81, 2048)
    return TensorTree(shapes)


def test_caffe2_imagenet_backbone(tmp_path, write_py2_pickle, caplog):
    blobs = _imagenet_c2_blobs(np.random.default_rng(0))
    blobs["retnet_cls_pred_fpn3_w"] = np.zeros((9, 4), np.float32)  # matches nothing here
    path = write_py2_pickle(str(tmp_path / "R-50.pkl"), blobs)
    model = _c4_model()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        DetectionCheckpointer(model).load(path)
    sd = model.state_dict()
    expect = {
        "backbone.bottom_up.stem.conv1.weight": "conv1_w",
        "backbone.bottom_up.stem.conv1.norm.weight": "res_conv1_bn_s",
        "backbone.bottom_up.stem.conv1.norm.bias": "res_conv1_bn_b",
        "backbone.bottom_up.res2.0.shortcut.weight": "res2_0_branch1_w",
        "backbone.bottom_up.res2.0.shortcut.norm.weight": "res2_0_branch1_bn_s",
        "backbone.bottom_up.res2.0.conv1.weight": "res2_0_branch2a_w",
        "backbone.bottom_up.res2.1.conv2.norm.bias": "res2_1_branch2b_bn_b",
        "backbone.bottom_up.res2.1.conv3.weight": "res2_1_branch2c_w",
        "roi_heads.res5.0.conv1.weight": "res5_0_branch2a_w",
        "roi_heads.res5.0.shortcut.norm.bias": "res5_0_branch1_bn_b",
    }
    for ours, theirs in expect.items():
        np.testing.assert_array_equal(sd[ours].numpy(), blobs[theirs], err_msg=ours)
    # A file without statistics gives mean 0 / var 1 (not the layer's initial 1 - eps).
    assert (sd["backbone.bottom_up.res2.0.conv1.norm.running_mean"] == 0).all()
    assert (sd["roi_heads.res5.0.conv3.norm.running_var"] == 1).all()
    assert (sd["roi_heads.box_predictor.cls_score.weight"] == UNLOADED).all()
    text = _warnings(caplog)
    assert "roi_heads.box_predictor.cls_score.weight" in text  # the only missing tensor
    unused = text[text.index("not used by the model") :].splitlines()[1:]
    assert unused == ["  retnet_cls_pred_fpn3_w"]  # reported by its name in the file
    assert "running_" not in text and "fc1000" not in text  # neither missing nor unexpected


def _detectron1_blobs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    shapes = {
        "fpn_inner_res2_2_sum_lateral_w": (4, 3, 1, 1),
        "fpn_inner_res5_2_sum_b": (4,),
        "fpn_res2_2_sum_w": (4, 4, 3, 3),
        "conv_rpn_fpn2_w": (4, 4, 3, 3),
        "rpn_cls_logits_fpn2_w": (3, 4, 1, 1),
        "rpn_bbox_pred_fpn2_b": (12,),
        "fc6_w": (8, 196),
        "fc7_w": (8, 8),
        "cls_score_w": (4, 8),  # 3 classes + background at row 0
        "cls_score_b": (4,),
        "bbox_pred_w": (16, 8),  # 4 x (background + 3 classes)
        "_[mask]_fcn1_w": (4, 4, 3, 3),
        "_[mask]_fcn4_b": (4,),
        "conv5_mask_w": (4, 4, 2, 2),
        "mask_fcn_logits_w": (4, 4, 1, 1),  # background + 3 classes
        "mask_fcn_logits_b": (4,),
    }
    blobs = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    blobs["fc6_w_momentum"] = np.zeros((8, 196), np.float32)  # training state in old files
    return blobs


def test_detectron1_detection_blobs(tmp_path, write_py2_pickle, caplog):
    blobs = _detectron1_blobs()
    path = write_py2_pickle(str(tmp_path / "model_final.pkl"), {"blobs": blobs, "cfg": "yaml"})
    ours = {
        "backbone.fpn_lateral2.weight": (4, 3, 1, 1),
        "backbone.fpn_lateral5.bias": (4,),
        "backbone.fpn_output2.weight": (4, 4, 3, 3),
        "proposal_generator.rpn_head.conv.weight": (4, 4, 3, 3),
        "proposal_generator.rpn_head.objectness_logits.weight": (3, 4, 1, 1),
        "proposal_generator.rpn_head.anchor_deltas.bias": (12,),
        "roi_heads.box_head.fc1.weight": (8, 196),
        "roi_heads.box_head.fc2.weight": (8, 8),
        "roi_heads.box_predictor.cls_score.weight": (4, 8),
        "roi_heads.box_predictor.cls_score.bias": (4,),
        "roi_heads.box_predictor.bbox_pred.weight": (12, 8),
        "roi_heads.mask_head.mask_fcn1.weight": (4, 4, 3, 3),
        "roi_heads.mask_head.mask_fcn4.bias": (4,),
        "roi_heads.mask_head.deconv.weight": (4, 4, 2, 2),
        "roi_heads.mask_head.predictor.weight": (3, 4, 1, 1),
        "roi_heads.mask_head.predictor.bias": (3,),
    }
    model = TensorTree(ours)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        DetectionCheckpointer(model).load(path)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    assert _warnings(caplog) == ""  # every tensor used, momentum blobs ignored
    pairs = {  # ours -> the blob it must equal, after Detectron1's class-layout fixes
        "backbone.fpn_lateral2.weight": blobs["fpn_inner_res2_2_sum_lateral_w"],
        "backbone.fpn_lateral5.bias": blobs["fpn_inner_res5_2_sum_b"],
        "backbone.fpn_output2.weight": blobs["fpn_res2_2_sum_w"],
        "proposal_generator.rpn_head.conv.weight": blobs["conv_rpn_fpn2_w"],
        "proposal_generator.rpn_head.objectness_logits.weight": blobs["rpn_cls_logits_fpn2_w"],
        "proposal_generator.rpn_head.anchor_deltas.bias": blobs["rpn_bbox_pred_fpn2_b"],
        "roi_heads.box_head.fc1.weight": blobs["fc6_w"],
        "roi_heads.box_head.fc2.weight": blobs["fc7_w"],
        "roi_heads.mask_head.mask_fcn1.weight": blobs["_[mask]_fcn1_w"],
        "roi_heads.mask_head.mask_fcn4.bias": blobs["_[mask]_fcn4_b"],
        "roi_heads.mask_head.deconv.weight": blobs["conv5_mask_w"],
        "roi_heads.box_predictor.cls_score.weight": blobs["cls_score_w"][[1, 2, 3, 0]],
        "roi_heads.box_predictor.cls_score.bias": blobs["cls_score_b"][[1, 2, 3, 0]],
        "roi_heads.box_predictor.bbox_pred.weight": blobs["bbox_pred_w"][4:],
        "roi_heads.mask_head.predictor.weight": blobs["mask_fcn_logits_w"][1:],
        "roi_heads.mask_head.predictor.bias": blobs["mask_fcn_logits_b"][1:],
    }
    assert pairs.keys() == sd.keys()
    for ours, expected in pairs.items():
        np.testing.assert_array_equal(sd[ours], expected, err_msg=ours)


def test_torchvision_resnet_pth(tmp_path, caplog):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    for m in tv.modules():  # non-trivial statistics, so a wrong mapping shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(tv.state_dict(), path)
    pairs = {
        "stem.conv1.weight": "conv1.weight",
        "stem.conv1.norm.running_var": "bn1.running_var",
        "res2.0.conv1.weight": "layer1.0.conv1.weight",
        "res2.0.conv3.norm.weight": "layer1.0.bn3.weight",
        "res3.0.shortcut.weight": "layer2.0.downsample.0.weight",
        "res3.0.shortcut.norm.running_mean": "layer2.0.downsample.1.running_mean",
        "res5.2.conv2.weight": "layer4.2.conv2.weight",
    }
    tv_sd = tv.state_dict()
    model = TensorTree({f"backbone.bottom_up.{k}": tuple(tv_sd[v].shape) for k, v in pairs.items()})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        DetectionCheckpointer(model).load(str(path))
    sd = model.state_dict()
    for ours, theirs in pairs.items():
        torch.testing.assert_close(sd[f"backbone.bottom_up.{ours}"], tv_sd[theirs], rtol=0, atol=0)
    assert "fc.weight" not in _warnings(caplog) and "num_batches_tracked" not in _warnings(caplog)


def test_detectron2_training_pth(tmp_path, small_d2_shapes):
    """A Detectron2-trained file, saved from a DDP model ("module." prefix), with training state."""
    weights = {
        f"module.{k}": torch.from_numpy(v) for k, v in random_arrays(small_d2_shapes).items()
    }
    data = {"model": weights, "optimizer": {"state": {}}, "scheduler": {}, "iteration": 1234}
    path = tmp_path / "model_0001234.pth"
    torch.save(data, path)
    model = TensorTree(small_d2_shapes)
    extra = DetectionCheckpointer(model).load(str(path))
    assert extra["iteration"] == 1234
    sd = model.state_dict()
    for name, value in weights.items():
        torch.testing.assert_close(sd[name[len("module.") :]], value, rtol=0, atol=0)


def test_flat_state_dict_and_big_endian_arrays(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    w = np.arange(6, dtype=">f4").reshape(2, 3)
    path = _zoo_pkl(tmp_path / "x.pkl", {"0.weight": w, "0.bias": np.ones(2, ">f8")})
    DetectionCheckpointer(model).load(path)
    assert model[0].weight.tolist() == w.astype(np.float32).tolist()
    assert model[0].bias.tolist() == [1.0, 1.0]


def test_non_array_entry_is_a_clear_error(tmp_path):
    path = _zoo_pkl(tmp_path / "x.pkl", {"0.weight": "not an array"})
    with pytest.raises(ValueError, match=r"x\.pkl.*'0\.weight'"):
        DetectionCheckpointer(torch.nn.Sequential(torch.nn.Linear(1, 1))).load(path)


def test_empty_path_loads_nothing():
    model = torch.nn.Linear(1, 1)
    before = model.weight.clone()
    assert DetectionCheckpointer(model).load("") == {}
    assert torch.equal(model.weight, before)

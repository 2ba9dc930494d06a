"""Cascade Mask R-CNN and Keypoint R-CNN in tiny variants: the zoo configs build with
Detectron2's checkpoint names, training gives every stage's / the keypoint loss and a gradient
to every parameter, empty images give zero box, mask and keypoint losses, and a one-stage
cascade is exactly a class-agnostic `StandardROIHeads`."""

import numpy as np
import pytest
import torch
from rcnn_tiny import make_inputs, tiny_cfg

from masktron import model_zoo
from masktron.models.build import build_model
from masktron.structures import Keypoints

CASCADE = "Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml"
KEYPOINT = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"


def tiny_cascade_cfg():
    return tiny_cfg(CASCADE, depth=18)  # the heads are what is tested here


def tiny_keypoint_cfg():
    cfg = tiny_cfg(KEYPOINT, depth=18)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = [16, 16]
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 5
    return cfg


def keypoint_inputs():
    """One image with two persons (5 keypoints each, some unlabelled), one without anyone."""
    inputs = make_inputs()
    kps = torch.tensor(
        [
            [[20.0, 15.0, 2], [30.0, 20.0, 2], [40.0, 35.0, 1], [0.0, 0.0, 0], [25.0, 30.0, 2]],
            [[70.0, 65.0, 2], [80.0, 70.0, 0], [85.0, 85.0, 2], [65.0, 88.0, 2], [0.0, 0.0, 0]],
        ]
    )
    for x, k in zip(inputs, (kps, kps[:0])):
        inst = x["instances"]
        inst.remove("gt_masks")
        inst.gt_classes = torch.zeros(len(inst), dtype=torch.int64)
        inst.gt_keypoints = Keypoints(k)
    return inputs


@pytest.mark.parametrize("name", [CASCADE, KEYPOINT])
def test_zoo_model_has_detectron2_checkpoint_names(name, shared_dir):
    """Every tensor of Detectron2's checkpoint (listed in the fixture's calibration file) and
    nothing else, with the same shapes."""
    stem = name.split("/")[1].replace(".yaml", "")
    calib = np.load(shared_dir / "fixtures" / f"{stem}.s0.calib.npz")
    expected = {k[6:]: tuple(calib[k]) for k in calib.files if k.startswith("shape/")}
    cfg = model_zoo.get_config(name)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if "pixel_" not in k}
    ours = {k: v for k, v in ours.items() if not k.endswith("num_batches_tracked")}
    assert ours == expected


def test_cascade_training_gives_each_stage_losses_and_gradients_everywhere():
    torch.manual_seed(0)
    model = build_model(tiny_cascade_cfg()).train()
    losses = model(make_inputs())
    stages = {f"{n}_stage{s}" for n in ("loss_cls", "loss_box_reg") for s in range(3)}
    assert set(losses) == stages | {"loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert all(losses[f"loss_box_reg_stage{s}"] > 0 for s in range(3))
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]


def test_cascade_image_without_objects_gives_zero_box_and_mask_losses():
    torch.manual_seed(0)
    model = build_model(tiny_cascade_cfg()).train()
    losses = model(make_inputs()[1:])
    assert losses["loss_mask"] == 0
    for s in range(3):
        assert losses[f"loss_box_reg_stage{s}"] == 0 and losses[f"loss_cls_stage{s}"] > 0


def test_one_stage_cascade_equals_class_agnostic_standard_heads():
    torch.manual_seed(0)
    cfg = tiny_cascade_cfg()
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = [0.5]
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = [[10.0, 10.0, 5.0, 5.0]]
    cascade = build_model(cfg).eval()
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    standard = build_model(cfg).eval()
    state = {
        k.replace("box_head.0.", "box_head.").replace("box_predictor.0.", "box_predictor."): v
        for k, v in cascade.state_dict().items()
    }
    standard.load_state_dict(state)
    for layer in (
        cascade.roi_heads.box_predictor[0].cls_score,
        standard.roi_heads.box_predictor.cls_score,
    ):
        torch.nn.init.zeros_(layer.weight)  # flat scores: every proposal is a detection
    inputs = [{"image": make_inputs()[0]["image"]}]
    with torch.no_grad():
        a = cascade(inputs)[0]["instances"]
        b = standard(inputs)[0]["instances"]
    assert len(a) > 0
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    torch.testing.assert_close(a.scores, b.scores)
    assert torch.equal(a.pred_masks, b.pred_masks)


def test_cascade_refuses_class_specific_regression():
    cfg = tiny_cascade_cfg()
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
    with pytest.raises(ValueError, match="CLS_AGNOSTIC_BBOX_REG"):
        build_model(cfg)


def test_keypoint_training_gives_keypoint_loss_and_gradients_everywhere():
    torch.manual_seed(0)
    model = build_model(tiny_keypoint_cfg()).train()
    losses = model(keypoint_inputs())
    assert set(losses) == {
        "loss_cls",
        "loss_box_reg",
        "loss_keypoint",
        "loss_rpn_cls",
        "loss_rpn_loc",
    }
    assert torch.isfinite(losses["loss_keypoint"]) and losses["loss_keypoint"] > 0
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]


def test_keypoint_image_without_persons_gives_zero_keypoint_loss():
    torch.manual_seed(0)
    model = build_model(tiny_keypoint_cfg()).train()
    losses = model(keypoint_inputs()[1:])
    assert losses["loss_keypoint"] == 0 and losses["loss_box_reg"] == 0
    losses["loss_keypoint"].backward()  # still part of the graph


def test_keypoint_training_without_keypoint_annotations_says_so():
    model = build_model(tiny_keypoint_cfg()).train()
    inputs = keypoint_inputs()
    inputs[0]["instances"].remove("gt_keypoints")
    with pytest.raises(ValueError, match="needs gt_keypoints"):
        model(inputs)


def test_keypoint_inference_gives_keypoints_in_original_pixels():
    torch.manual_seed(0)
    model = build_model(tiny_keypoint_cfg()).eval()
    torch.nn.init.zeros_(model.roi_heads.box_predictor.cls_score.weight)
    with torch.no_grad():
        (out,) = model([{"image": keypoint_inputs()[0]["image"], "height": 192, "width": 256}])
    inst = out["instances"]
    assert len(inst) > 0 and inst.pred_keypoints.shape == (len(inst), 5, 3)
    boxes, kps = inst.pred_boxes.tensor, inst.pred_keypoints
    # Every keypoint lies in its (rescaled) box, up to the +-0.5 px of a cell centre.
    assert (kps[:, :, 0] >= boxes[:, None, 0] - 1).all() and (
        kps[:, :, 0] <= boxes[:, None, 2] + 1
    ).all()
    assert (kps[:, :, 1] >= boxes[:, None, 1] - 1).all() and (
        kps[:, :, 1] <= boxes[:, None, 3] + 1
    ).all()
    assert inst.pred_keypoint_heatmaps.shape == (len(inst), 5, 56, 56)


def test_deformable_convolution_configs_are_refused_clearly():
    """Detectron2's Misc/*dconv* configs set DEFORM_ON_PER_STAGE, which masktron lacks."""
    cfg = tiny_cascade_cfg()
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, True, True, True]
    with pytest.raises(ValueError, match="deformable"):
        build_model(cfg)


def test_zoo_lists_the_new_entries_with_published_figures():
    entry = model_zoo.ZOO["COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x"]
    assert (entry.box_ap, entry.keypoint_ap) == (55.4, 65.5)
    url = model_zoo.get_checkpoint_url("Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml")
    assert url.endswith("Misc/cascade_mask_rcnn_R_50_FPN_3x/144998488/model_final_480dd8.pkl")
    for name in model_zoo.ZOO:
        if name.startswith(("Misc/", "COCO-Keypoints/")):
            model_zoo.get_config(name + ".yaml")  # every entry has its config


def test_groupnorm_config_has_detectron2s_layout():
    """Misc/mask_rcnn_R_50_FPN_3x_gn: GN (no running statistics, no conv bias) in the ResNet,
    the FPN and a 4conv1fc box head; plain 2fc and BN elsewhere are gone."""
    cfg = model_zoo.get_config("Misc/mask_rcnn_R_50_FPN_3x_gn.yaml")
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        names = set(build_model(cfg).state_dict())
    for conv in (
        "backbone.bottom_up.stem.conv1",
        "backbone.bottom_up.res3.0.conv2",
        "backbone.fpn_lateral2",
        "backbone.fpn_output5",
        "roi_heads.box_head.conv4",
        "roi_heads.mask_head.mask_fcn4",
    ):
        assert {f"{conv}.norm.weight", f"{conv}.norm.bias"} <= names, conv
        assert f"{conv}.bias" not in names and f"{conv}.norm.running_mean" not in names, conv
    assert "roi_heads.box_head.fc1.weight" in names and "roi_heads.box_head.fc2.weight" not in names
    assert not any("running" in n for n in names)


def test_tiny_groupnorm_model_trains_with_gradients_everywhere():
    torch.manual_seed(0)
    cfg = tiny_cfg("Misc/scratch_mask_rcnn_R_50_FPN_3x_gn.yaml", depth=18)
    cfg.MODEL.RESNETS.NORM = "GN"  # tiny_cfg switches to BN; GN needs multiples of 32
    for key in (
        "RESNETS.STEM_OUT_CHANNELS",
        "RESNETS.RES2_OUT_CHANNELS",
        "FPN.OUT_CHANNELS",
        "ROI_BOX_HEAD.CONV_DIM",
        "ROI_MASK_HEAD.CONV_DIM",
    ):
        node, leaf = key.split(".")
        setattr(cfg.MODEL[node], leaf, 32)
    model = build_model(cfg).train()
    losses = model(make_inputs())
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]

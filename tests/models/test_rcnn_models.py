"""Every R-CNN zoo layout in a tiny variant: training losses, gradients, empty images, inference."""

import pytest
import torch
from rcnn_tiny import make_inputs, tiny_cfg

from masktron import model_zoo
from masktron.models.build import build_model

R_CNN_CONFIGS = [
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml",
    "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
]


@pytest.mark.parametrize("name", R_CNN_CONFIGS)
def test_training_step_gives_finite_losses_and_gradients_everywhere(name):
    torch.manual_seed(0)
    cfg = tiny_cfg(name)
    model = build_model(cfg).train()
    losses = model(make_inputs())
    expected = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    if cfg.MODEL.MASK_ON:
        expected.add("loss_mask")
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


def test_image_without_objects_gives_zero_box_and_mask_losses():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(R_CNN_CONFIGS[0])).train()
    losses = model(make_inputs()[1:])  # only the empty image
    assert losses["loss_box_reg"] == 0 and losses["loss_mask"] == 0 and losses["loss_rpn_loc"] == 0
    assert losses["loss_cls"] > 0 and losses["loss_rpn_cls"] > 0


@pytest.mark.parametrize("name", R_CNN_CONFIGS[:3])
def test_inference_returns_instances_in_original_pixels(name):
    torch.manual_seed(0)
    cfg = tiny_cfg(name)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    # Random deep nets saturate the softmax and throw boxes far away: with zero deltas the
    # anchors become proposals, and with flat class logits each one a detection of every class.
    for layer in (
        model.proposal_generator.rpn_head.anchor_deltas,
        model.roi_heads.box_predictor.cls_score,
        model.roi_heads.box_predictor.bbox_pred,
    ):
        torch.nn.init.zeros_(layer.weight)
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 96, 128) * 255, "height": 192, "width": 256}])
    inst = out["instances"]
    assert inst.image_size == (192, 256) and len(inst) > 0
    assert (inst.pred_boxes.tensor[:, 2:] <= torch.tensor([256.0, 192.0])).all()
    assert inst.pred_masks.shape == (len(inst), 192, 256) and inst.pred_masks.dtype == torch.bool
    assert (inst.scores[:-1] >= inst.scores[1:]).all()


@pytest.mark.parametrize("name", [n for n in model_zoo.list_configs() if "rcnn" in n])
def test_every_rcnn_zoo_config_builds_with_detectron2_names(name):
    cfg = model_zoo.get_config(name)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):  # shapes and names only: no memory, no time
        model = build_model(cfg)
    names = set(model.state_dict())
    assert "backbone.bottom_up.stem.conv1.weight" in names or "backbone.stem.conv1.weight" in names
    predictor = model.roi_heads.box_predictor
    if cfg.MODEL.ROI_HEADS.NAME == "CascadeROIHeads":  # one predictor per stage
        last = len(predictor) - 1
        assert f"roi_heads.box_predictor.{last}.cls_score.weight" in names
        predictor = predictor[last]
    else:
        assert "roi_heads.box_predictor.cls_score.weight" in names
    classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES  # 80 for COCO, 1 for our nuclei model
    assert predictor.cls_score.weight.shape[0] == classes + 1
    if "_C4_" in name:
        assert "roi_heads.res5.2.conv3.weight" in names
    if cfg.MODEL.MASK_ON:
        assert any(n.startswith("roi_heads.mask_head.predictor") for n in names)

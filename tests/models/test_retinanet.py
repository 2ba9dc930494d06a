"""RetinaNet: head layout and names, anchor labelling, losses and inference on hand-made
inputs, and tiny zoo variants end to end (gradients everywhere, empty images, batching)."""

import math
from functools import partial

import pytest
import torch
from test_rcnn_models import tiny_cfg as tiny_rcnn_cfg
from torchvision.ops import sigmoid_focal_loss

from masktron import model_zoo
from masktron.models.box_coder import Box2BoxTransform
from masktron.models.build import build_model
from masktron.models.matcher import Matcher
from masktron.models.retinanet import (
    RetinaNetHead,
    label_anchors,
    permute_to_n_hwa_k,
    retinanet_inference_single_image,
    retinanet_losses,
)
from masktron.structures import Boxes, Instances

RETINANET_CONFIGS = [n for n in model_zoo.list_configs() if "retinanet" in n]


def tiny_cfg(name: str = "COCO-Detection/retinanet_R_50_FPN_3x.yaml"):
    """A zoo RetinaNet at a size that runs in a second: same depth and layout, narrow widths
    (the R-CNN tests' shrinking; its RoI settings do not apply here)."""
    cfg = tiny_rcnn_cfg(name)
    cfg.MODEL.RETINANET.NUM_CLASSES = 3
    return cfg


def assert_trains_everywhere(model, inputs, loss_names):
    """One training step: exactly `loss_names`, all finite, a gradient for every parameter."""
    losses = model(inputs)
    assert set(losses) == set(loss_names)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


def make_inputs():
    with_objects = Instances(
        (96, 128),
        gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 50.0, 120.0, 90.0]])),
        gt_classes=torch.tensor([0, 2]),
    )
    empty = Instances(
        (96, 128), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.int64)
    )
    g = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(3, 96, 128, generator=g) * 255  # noqa: E731
    return [{"image": image(), "instances": with_objects}, {"image": image(), "instances": empty}]


def zoo_state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Checkpoint names and shapes of a full-size zoo model, built on the meta device."""
    cfg = model_zoo.get_config(name)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):  # shapes and names only: no memory, no time
        model = build_model(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", RETINANET_CONFIGS)
def test_every_retinanet_zoo_config_builds_with_detectron2_names(name):
    shapes = zoo_state_shapes(name)
    for k in (0, 2, 4, 6):
        assert shapes[f"head.cls_subnet.{k}.weight"] == (256, 256, 3, 3)
        assert shapes[f"head.bbox_subnet.{k}.bias"] == (256,)
    assert shapes["head.cls_score.weight"] == (9 * 80, 256, 3, 3)
    assert shapes["head.bbox_pred.weight"] == (9 * 4, 256, 3, 3)
    assert shapes["backbone.top_block.p6.weight"] == (256, 2048, 3, 3)  # P6 from C5
    assert not any("anchor" in k or "pixel" in k for k in shapes)  # not saved, as in Detectron2


def test_head_starts_at_the_prior_probability_and_keeps_norm_indices():
    head = RetinaNetHead(in_channels=8, num_classes=5, num_anchors=2, conv_dims=[8, 8])
    (logits,), (deltas,) = head([torch.zeros(1, 8, 3, 4)])
    assert logits.shape == (1, 10, 3, 4) and deltas.shape == (1, 8, 3, 4)
    torch.testing.assert_close(logits.sigmoid(), torch.full_like(logits, 0.01))
    gn = RetinaNetHead(in_channels=32, num_classes=1, num_anchors=1, conv_dims=[32], norm="GN")
    assert isinstance(gn.cls_subnet[1], torch.nn.GroupNorm)  # conv, norm, relu
    with pytest.raises(ValueError, match="NORM"):
        RetinaNetHead(in_channels=8, num_classes=1, num_anchors=1, conv_dims=[8], norm="BN")


def test_permute_follows_the_anchor_order_cells_then_anchors():
    n, a, k, h, w = 2, 3, 4, 2, 5
    x = torch.arange(n * a * k * h * w).view(n, a * k, h, w)
    out = permute_to_n_hwa_k(x, k)
    assert out.shape == (n, h * w * a, k)
    # Anchor r = (y * W + x) * A + a; its class c is channel a * K + c of cell (y, x).
    y, xx, aa, c = 1, 3, 2, 1
    assert out[1, (y * w + xx) * a + aa, c] == x[1, aa * k + c, y, xx]


def test_label_anchors_thresholds_ignore_band_low_quality_and_empty_images():
    anchors = Boxes(
        torch.tensor(
            [
                [0.0, 0.0, 10.0, 10.0],  # IoU 1 with gt 0 -> class 2
                [0.0, 0.0, 10.0, 22.0],  # IoU 100/220 = 0.45 with gt 0 -> ignored
                [0.0, 0.0, 10.0, 30.0],  # IoU 0.33 -> background
                [100.0, 100.0, 110.0, 130.0],  # gt 1's best anchor (IoU 0.33) -> low quality fg
            ]
        )
    )
    gt = Instances(
        (200, 200),
        gt_boxes=Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])),
        gt_classes=torch.tensor([2, 1]),
    )
    empty = Instances((200, 200), gt_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0))
    matcher = Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)
    labels, boxes = label_anchors(anchors, [gt, empty], matcher, num_classes=3)
    assert labels.tolist() == [[2, -1, 3, 1], [3, 3, 3, 3]]
    torch.testing.assert_close(boxes[0, 3], gt.gt_boxes.tensor[1])
    assert boxes.shape == (2, 4, 4)


def test_losses_are_focal_sums_over_valid_anchors_divided_by_the_normaliser():
    coder = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 15.0], [0.0, 0.0, 4.0, 4.0]])
    gt_boxes = torch.tensor([[[1.0, 1.0, 11.0, 12.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    gt_labels = torch.tensor([[1, 2, -1]])  # foreground class 1, background (K=2), ignored
    logits = torch.tensor([[[0.3, -1.0], [2.0, 0.5], [9.0, 9.0]]])
    target_deltas = coder.get_deltas(anchors[:1], gt_boxes[0, :1])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 0] = target_deltas[0] + torch.tensor([0.5, -0.25, 0.0, 0.125])
    losses = retinanet_losses(
        anchors, logits, deltas, gt_labels, gt_boxes, box2box_transform=coder, normalizer=4.0
    )
    focal = sigmoid_focal_loss(
        logits[0, :2], torch.tensor([[0.0, 1.0], [0.0, 0.0]]), reduction="sum"
    )
    torch.testing.assert_close(losses["loss_cls"], focal / 4.0)
    torch.testing.assert_close(losses["loss_box_reg"], torch.tensor(0.875 / 4.0))  # L1, beta 0
    giou = retinanet_losses(
        anchors,
        logits,
        deltas,
        gt_labels,
        gt_boxes,
        box2box_transform=coder,
        normalizer=4.0,
        box_reg_loss_type="giou",
    )
    assert 0 < giou["loss_box_reg"] < 0.25


def test_inference_thresholds_per_level_top_k_classwise_nms_and_leaves_boxes_unclipped():
    level0 = Boxes(
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [90, 90, 130, 130]])
    )
    level1 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    scores0 = torch.tensor([[0.9, 0.05], [0.8, 0.7], [0.6, 0.01]])  # 0.05 is not > 0.05
    scores1 = torch.tensor([[0.3, 0.2]])
    infer = partial(
        retinanet_inference_single_image,
        [level0, level1],
        [scores0, scores1],
        [torch.zeros(3, 4), torch.zeros(1, 4)],
        (100, 100),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        score_thresh=0.05,
        nms_thresh=0.5,
    )
    result = infer(topk_candidates=4, max_detections=10)
    # Level 0 candidates: 0.9, 0.8, 0.7, 0.6 (top 4 of 4); level 1: 0.3, 0.2. Class 0 keeps
    # 0.9 (anchor 0) and 0.6 (anchor 2); 0.8 and 0.3 overlap 0.9's box. Class 1 keeps 0.7.
    assert result.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert result.pred_classes.tolist() == [0, 1, 0]
    assert result.pred_boxes.tensor[2].tolist() == [90.0, 90.0, 130.0, 130.0]  # past 100: kept
    # Level 0 now gives only 0.9 and 0.8 (0.8 suppressed); level 1's 0.3 falls to NMS too.
    assert infer(topk_candidates=2, max_detections=2).scores.tolist() == pytest.approx([0.9, 0.2])


@pytest.mark.parametrize("name", RETINANET_CONFIGS)
def test_training_step_gives_finite_losses_and_gradients_everywhere(name):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(name)).train()
    assert_trains_everywhere(model, make_inputs(), ["loss_cls", "loss_box_reg"])


def test_loss_normaliser_is_a_moving_average_of_the_foreground_count():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).train()
    inputs = make_inputs()
    losses = model(inputs[1:])  # no objects: box loss 0, normaliser moves towards 1
    assert losses["loss_box_reg"] == 0 and losses["loss_cls"] > 0
    assert model.loss_normalizer == pytest.approx(0.9 * 100 + 0.1 * 1)
    model(inputs[:1])
    assert model.loss_normalizer >= 0.9 * 90.1 + 0.1 * 2  # each object has an anchor at least


def test_giou_box_loss_trains_too():
    cfg = tiny_cfg()
    cfg.MODEL.RETINANET.BBOX_REG_LOSS_TYPE = "giou"
    losses = build_model(cfg).train()(make_inputs())
    assert torch.isfinite(losses["loss_box_reg"]) and losses["loss_box_reg"] > 0


def test_inference_in_a_batch_equals_one_by_one_and_rescales_to_the_output_size():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.head.cls_score.weight, std=0.5)  # spread the scores out
    images = [torch.rand(3, 96, 128) * 255, torch.rand(3, 80, 112) * 255]
    inputs = [{"image": images[0], "height": 192, "width": 256}, {"image": images[1]}]
    with torch.no_grad():
        batched = model(inputs)
        single = [model([x])[0] for x in inputs]
    for b, s in zip(batched, single):
        torch.testing.assert_close(b["instances"].scores, s["instances"].scores)
        torch.testing.assert_close(
            b["instances"].pred_boxes.tensor, s["instances"].pred_boxes.tensor
        )
    first = batched[0]["instances"]
    assert first.image_size == (192, 256) and 0 < len(first) <= 100
    assert (first.pred_boxes.tensor[:, 2:] <= torch.tensor([256.0, 192.0])).all()
    assert (first.scores[:-1] >= first.scores[1:]).all()
    assert first.pred_classes.max() < 3 and not first.has("pred_masks")


def test_focal_prior_matches_the_config():
    cfg = tiny_cfg()
    cfg.MODEL.RETINANET.PRIOR_PROB = 0.1
    bias = build_model(cfg).head.cls_score.bias
    torch.testing.assert_close(bias, torch.full_like(bias, -math.log(9.0)))


def test_no_score_above_the_threshold_gives_empty_detections_of_the_right_types():
    cfg = tiny_cfg()
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.5  # the prior probability is 0.01 everywhere
    model = build_model(cfg).eval()
    torch.nn.init.zeros_(model.head.cls_score.weight)
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 64, 96) * 255}])
    inst = out["instances"]
    assert len(inst) == 0 and inst.image_size == (64, 96)
    assert inst.pred_boxes.tensor.shape == (0, 4) and inst.pred_classes.dtype == torch.int64

"""Panoptic FPN: the semantic head's layout and loss, the panoptic combination on hand-made
outputs, and tiny zoo variants end to end (gradients everywhere, empty images, output format)."""

import pytest
import torch
from test_rcnn_models import make_inputs
from test_rcnn_models import tiny_cfg as tiny_rcnn_cfg
from test_retinanet import assert_trains_everywhere, zoo_state_shapes
from torch.nn import functional as F

from masktron import model_zoo
from masktron.layers import ShapeSpec
from masktron.models.build import build_model
from masktron.models.panoptic_fpn import combine_semantic_and_instance_outputs
from masktron.models.sem_seg_head import SemSegFPNHead, sem_seg_loss
from masktron.structures import Boxes, Instances

PANOPTIC_CONFIGS = [n for n in model_zoo.list_configs() if "PanopticSegmentation" in n]


def tiny_cfg(name: str = PANOPTIC_CONFIGS[0]):
    cfg = tiny_rcnn_cfg(name)
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32  # GroupNorm(32) needs a multiple of 32
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 4
    return cfg


def panoptic_inputs():
    inputs = make_inputs()
    for n, x in enumerate(inputs):
        sem_seg = torch.full((96, 128), 2, dtype=torch.int64)
        sem_seg[:40] = 0 if n == 0 else 3  # "things" where the first image has objects
        sem_seg[:, :8] = 255  # unlabelled
        x["sem_seg"] = sem_seg
    return inputs


@pytest.mark.parametrize("name", PANOPTIC_CONFIGS)
def test_every_panoptic_zoo_config_builds_with_detectron2_names(name):
    shapes = zoo_state_shapes(name)
    sem = {k[len("sem_seg_head.") :]: v for k, v in shapes.items() if k.startswith("sem_seg_head.")}
    convs = {"p2": [0], "p3": [0], "p4": [0, 2], "p5": [0, 2, 4]}  # x2 upsampling between
    expected = {"predictor.weight": (54, 128, 1, 1), "predictor.bias": (54,)}
    for level, indices in convs.items():
        for k in indices:
            expected[f"{level}.{k}.weight"] = (128, 256 if k == 0 else 128, 3, 3)
            expected[f"{level}.{k}.norm.weight"] = expected[f"{level}.{k}.norm.bias"] = (128,)
    assert sem == expected  # no conv bias under GroupNorm
    assert "roi_heads.mask_head.predictor.weight" in shapes


def test_semantic_head_upsamples_every_level_to_the_input_resolution():
    torch.manual_seed(0)
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
    shapes = {k: ShapeSpec(channels=8, stride=s) for k, s in strides.items()}
    head = SemSegFPNHead(input_shape=shapes, num_classes=5, conv_dims=32, common_stride=4)
    features = {k: torch.randn(2, 8, 64 // s, 96 // s) for k, s in strides.items()}
    head.eval()
    logits, losses = head(features)
    assert logits.shape == (2, 5, 64, 96) and losses == {}
    # The branches add up at stride 4: a level's contribution is its own branch's output.
    at_stride_4 = head.predictor(sum(getattr(head, k)(features[k]) for k in strides))
    expected = F.interpolate(at_stride_4, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected)
    assert [type(m).__name__ for m in head.p4] == ["Conv2d", "Upsample", "Conv2d", "Upsample"]
    head.train()
    _, losses = head(features, torch.randint(0, 5, (2, 64, 96)))
    assert losses["loss_sem_seg"].shape == () and torch.isfinite(losses["loss_sem_seg"])


def test_sem_seg_loss_is_cross_entropy_at_input_resolution_without_ignored_pixels():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 6, requires_grad=True)
    targets = torch.randint(0, 3, (1, 16, 24))
    targets[0, :5] = 255
    loss = sem_seg_loss(logits, targets, common_stride=4, ignore_value=255)
    full = F.interpolate(logits, size=(16, 24), mode="bilinear", align_corners=False)
    keep = targets[0] != 255
    manual = F.cross_entropy(full[0].permute(1, 2, 0)[keep], targets[0][keep])
    torch.testing.assert_close(loss, manual)
    nothing = sem_seg_loss(logits, torch.full_like(targets, 255), common_stride=4, ignore_value=255)
    assert nothing == 0
    nothing.backward()  # still connected to the graph
    assert logits.grad is not None


def make_instances(masks, scores, classes):
    masks = torch.stack(masks)
    return Instances(
        tuple(masks.shape[1:]),
        pred_boxes=Boxes(torch.zeros(len(scores), 4)),
        scores=torch.tensor(scores),
        pred_classes=torch.tensor(classes),
        pred_masks=masks,
    )


def box_mask(y0, y1, x0, x1, size=(10, 10)):
    mask = torch.zeros(size, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_combine_paints_instances_best_first_then_large_enough_stuff():
    instances = make_instances(
        [
            box_mask(0, 4, 0, 4),  # 0.6: partly under 0.9's mask (4 of 16 px) -> its free 12 px
            box_mask(2, 6, 2, 6),  # 0.9: first
            box_mask(1, 5, 1, 5),  # 0.8: 9 of 16 px taken (> 0.5) -> skipped
            box_mask(0, 0, 0, 0),  # 0.7: empty mask -> skipped
            box_mask(8, 10, 8, 10),  # 0.4: below 0.5 -> the loop stops here
            box_mask(8, 10, 0, 2),  # 0.3
        ],
        [0.6, 0.9, 0.8, 0.7, 0.4, 0.3],
        [1, 2, 3, 4, 5, 6],
    )
    semantic = torch.zeros(10, 10, dtype=torch.int64)  # class 0: "things", never a segment
    semantic[6:] = 7  # 40 px, all free -> a stuff segment
    semantic[:6, 9] = 9  # 6 px -> under the area limit of 10
    panoptic, segments = combine_semantic_and_instance_outputs(
        instances, semantic, overlap_thresh=0.5, stuff_area_thresh=10, instances_score_thresh=0.5
    )
    assert panoptic.dtype == torch.int32 and panoptic.shape == (10, 10)
    assert segments == [
        {"id": 1, "isthing": True, "score": pytest.approx(0.9), "category_id": 2, "instance_id": 1},
        {"id": 2, "isthing": True, "score": pytest.approx(0.6), "category_id": 1, "instance_id": 0},
        {"id": 3, "isthing": False, "category_id": 7, "area": 40},
    ]
    assert (panoptic == 1).sum() == 16 and (panoptic == 2).sum() == 12
    assert (panoptic[2:4, 2:4] == 1).all()  # the overlap stays with the better instance
    assert (panoptic[:6, 9] == 0).all() and (panoptic[6:] == 3).all()


def test_combine_with_no_instances_gives_stuff_only():
    instances = make_instances([box_mask(0, 5, 0, 5)], [0.2], [0])
    semantic = torch.ones(10, 10, dtype=torch.int64)
    panoptic, segments = combine_semantic_and_instance_outputs(
        instances[:0],
        semantic,
        overlap_thresh=0.5,
        stuff_area_thresh=4096,
        instances_score_thresh=0.5,
    )
    assert segments == [] and (panoptic == 0).all()  # 100 px of stuff is under 4096


@pytest.mark.parametrize("name", PANOPTIC_CONFIGS)
def test_training_step_gives_finite_losses_and_gradients_everywhere(name):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(name)).train()
    names = [
        "loss_sem_seg",
        "loss_rpn_cls",
        "loss_rpn_loc",
        "loss_cls",
        "loss_box_reg",
        "loss_mask",
    ]
    assert_trains_everywhere(model, panoptic_inputs(), names)


def test_image_without_objects_and_instance_loss_weight():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).train()
    losses = model(panoptic_inputs()[1:])  # no objects, stuff only
    assert losses["loss_box_reg"] == 0 and losses["loss_mask"] == 0
    assert losses["loss_sem_seg"] > 0 and losses["loss_cls"] > 0
    torch.manual_seed(1)
    full = model(panoptic_inputs())
    model.instance_loss_weight = 0.5
    torch.manual_seed(1)
    half = model(panoptic_inputs())
    for key in full:
        scale = 0.5 if key in ("loss_cls", "loss_box_reg", "loss_mask") else 1.0
        torch.testing.assert_close(half[key], full[key] * scale)


def test_inference_returns_sem_seg_instances_and_panoptic_in_output_pixels():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 64
    model = build_model(cfg).eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 96, 128) * 255, "height": 192, "width": 256}])
        raw_instances, raw_sem_seg = model.inference([{"image": torch.rand(3, 96, 128)}], False)
    assert out["sem_seg"].shape == (4, 192, 256)
    assert out["instances"].image_size == (192, 256)
    panoptic, segments = out["panoptic_seg"]
    assert panoptic.shape == (192, 256) and panoptic.dtype == torch.int32
    assert set(torch.unique(panoptic).tolist()) <= {0} | {s["id"] for s in segments}
    semantic = out["sem_seg"].argmax(dim=0)
    for s in segments:
        if not s["isthing"]:  # a stuff segment is its class's pixels not taken by instances
            assert (
                s["category_id"] != 0 and (semantic[panoptic == s["id"]] == s["category_id"]).all()
            )
    assert raw_sem_seg.shape == (1, 4, 96, 128) and isinstance(raw_instances[0], Instances)


def test_panoptic_fpn_needs_masks():
    cfg = tiny_cfg()
    cfg.MODEL.MASK_ON = False
    with pytest.raises(ValueError, match="MASK_ON"):
        build_model(cfg)

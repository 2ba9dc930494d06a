"""ProposalNetwork (Detectron2's rpn_R_50_{C4,FPN}_1x): names, training, inference, and the
same proposals as the RPN inside a Mask R-CNN with the same weights."""

import pytest
import torch
from parity_utils import read_rgb
from test_rcnn_models import make_inputs, tiny_cfg

from masktron import model_zoo
from masktron.checkpoint import DetectionCheckpointer
from masktron.models.build import build_model
from masktron.models.proposal_network import ProposalNetwork
from masktron.predictors.default_predictor import DefaultPredictor

RPN_CONFIGS = ["COCO-Detection/rpn_R_50_FPN_1x.yaml", "COCO-Detection/rpn_R_50_C4_1x.yaml"]


@pytest.mark.parametrize("name", RPN_CONFIGS)
def test_rpn_zoo_configs_build_with_detectron2_names(name):
    cfg = model_zoo.get_config(name)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg)
    assert isinstance(model, ProposalNetwork)
    names = set(model.state_dict())
    assert "proposal_generator.rpn_head.objectness_logits.weight" in names
    assert not any(n.startswith("roi_heads") for n in names)
    if "_C4_" in name:  # the RPN reads res4; res5 belongs to the (absent) RoI head
        assert "backbone.res4.5.conv3.weight" in names
        assert not any(n.startswith("backbone.res5") for n in names)
        assert model.proposal_generator.pre_nms_topk[False] == 12000
    else:
        assert "backbone.bottom_up.res5.2.conv3.weight" in names
    assert model.proposal_generator.post_nms_topk[False] == 2000


@pytest.mark.parametrize("name", RPN_CONFIGS)
def test_training_step_gives_rpn_losses_and_gradients_everywhere(name):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(name)).train()
    losses = model(make_inputs())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


def test_inference_returns_sorted_proposals_in_original_pixels():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(RPN_CONFIGS[0])).eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 96, 128) * 255, "height": 192, "width": 256}])
    proposals = out["proposals"]
    assert set(out) == {"proposals"} and proposals.image_size == (192, 256)
    assert 0 < len(proposals) <= 50  # tiny_cfg's POST_NMS_TOPK_TEST
    boxes = proposals.proposal_boxes.tensor
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= torch.tensor([256.0, 192.0])).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    logits = proposals.objectness_logits
    assert (logits[:-1] >= logits[1:]).all()


@pytest.mark.slow
def test_same_proposals_as_the_rpn_inside_mask_rcnn(mask_rcnn_zoo_pkl, shared_dir):
    """Detectron2's RPN-only checkpoints share the backbone and RPN names of the R-CNNs: the
    Mask R-CNN fixture weights load into rpn_R_50_FPN_1x (RoI-head tensors left unused) and
    must propose exactly what the full model's RPN proposes."""
    image = read_rgb(shared_dir, "coffee")[:, :, ::-1].copy()  # BGR
    rpn_cfg = model_zoo.get_config(RPN_CONFIGS[0])
    rcnn_cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    for cfg in (rpn_cfg, rcnn_cfg):
        cfg.MODEL.WEIGHTS = str(mask_rcnn_zoo_pkl)
        cfg.MODEL.DEVICE = "cpu"
        cfg.INPUT.MIN_SIZE_TEST = 320
        cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
    proposals = DefaultPredictor(rpn_cfg)(image)["proposals"]

    rcnn = DefaultPredictor(rcnn_cfg)
    inputs = rcnn._to_input(image)
    model = rcnn.model
    with torch.inference_mode():
        images = model.preprocess_image([inputs])
        (inner,), _ = model.proposal_generator(images, model.backbone(images.tensor), None)
    scale_y = image.shape[0] / inner.image_size[0]
    scale_x = image.shape[1] / inner.image_size[1]
    expected = inner.proposal_boxes.tensor * torch.tensor([scale_x, scale_y, scale_x, scale_y])
    expected[:, 0::2] = expected[:, 0::2].clamp(0, image.shape[1])
    expected[:, 1::2] = expected[:, 1::2].clamp(0, image.shape[0])
    keep = (expected[:, 2:] > expected[:, :2]).all(dim=1)
    assert len(proposals) == int(keep.sum()) > 100
    torch.testing.assert_close(proposals.proposal_boxes.tensor, expected[keep])
    torch.testing.assert_close(proposals.objectness_logits, inner.objectness_logits[keep])


def test_checkpointer_reports_roi_head_tensors_as_unused(mask_rcnn_zoo_pkl, caplog):
    cfg = tiny_cfg(RPN_CONFIGS[0])
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 64
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
    cfg.MODEL.FPN.OUT_CHANNELS = 256
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    model = build_model(cfg)
    with caplog.at_level("WARNING"):
        DetectionCheckpointer(model).load(str(mask_rcnn_zoo_pkl))
    assert len(caplog.records) == 1  # no missing tensor, no shape mismatch: only unused ones
    assert "not used by the model" in caplog.text
    assert "roi_heads.box_predictor.cls_score.{weight, bias}" in caplog.text

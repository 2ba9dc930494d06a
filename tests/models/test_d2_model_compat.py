"""Detectron2 model behaviours: Python-side defaults, ROIPooler on zero images and
RetinaNet.forward_inference."""

import torch

from masktron import model_zoo
from masktron.modeling import build_model
from masktron.modeling.backbone import BasicStem, BottleneckBlock
from masktron.modeling.poolers import ROIPooler


def test_python_side_defaults():
    stem = BasicStem()  # Detectron2's defaults: 3 -> 64 channels, BatchNorm
    assert stem.conv1.in_channels == 3 and stem.conv1.out_channels == 64
    assert isinstance(stem.conv1.norm, torch.nn.BatchNorm2d)
    assert BasicStem(in_channels=1, out_channels=8, norm="FrozenBN").conv1.weight.shape[1] == 1
    block = BottleneckBlock(8, 16, bottleneck_channels=4)
    assert block.stride == 1 and block(torch.zeros(1, 8, 4, 4)).shape == (1, 16, 4, 4)


def test_roi_pooler_on_zero_images():
    pooler = ROIPooler(
        output_size=7, scales=[1 / 4, 1 / 8], sampling_ratio=0, pooler_type="ROIAlignV2"
    )
    features = [torch.zeros(0, 5, 8, 8), torch.zeros(0, 5, 4, 4)]
    assert pooler(features, []).shape == (0, 5, 7, 7)


def test_retinanet_forward_inference_matches_inference():
    cfg = model_zoo.get_config("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    cfg.MODEL.RETINANET.NUM_CONVS = 1
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = [{"image": torch.rand(3, 64, 96) * 255}]
    with torch.no_grad():
        expected = model.inference(inputs, do_postprocess=False)[0]
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        maps = [features[f] for f in model.head_in_features]
        (result,) = model.forward_inference(images, maps, list(model.head(maps)))
    assert len(result) > 0
    assert torch.equal(result.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(result.scores, expected.scores)

"""The pieces around an exported detector, each against the PyTorch code it reproduces:
numpy pasting, resizing and panoptic merge; the refusals of `export_detector`; a torch-free
runtime import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from masktron.data.transforms import ResizeShortestEdge
from masktron.export import ExportError, export_detector
from masktron.export.detector_onnx import DetectorOnnxModel
from masktron.export.onnx_runtime import (
    combine_panoptic,
    paste_masks,
    resize_bilinear,
    resize_shortest_edge,
)
from masktron.layers import paste_masks_in_image
from masktron.models.panoptic_fpn import combine_semantic_and_instance_outputs
from masktron.structures import Boxes, Instances


def test_numpy_pasting_equals_detectron2_pasting():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(60, 28, 28, generator=g)
    corner = torch.rand(60, 2, generator=g) * 340 - 20  # some boxes leave the image
    size = torch.rand(60, 2, generator=g) * 120 + 0.3
    boxes = torch.cat([corner, corner + size], dim=1)
    expected = paste_masks_in_image(masks, boxes, (240, 320)).numpy()
    ours = paste_masks(masks.numpy(), boxes.numpy(), (240, 320))
    assert expected.any() and (ours == expected).all()


@pytest.mark.parametrize("size", [(512, 512), (333, 517), (96, 80)])
def test_numpy_bilinear_resize_equals_torch_interpolate(size):
    x = torch.randn(5, 200, 300, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    # the same sampling positions; float32 weights rounded differently (~1e-5 relative)
    np.testing.assert_allclose(resize_bilinear(x.numpy(), size), expected.numpy(), atol=1e-4)


@pytest.mark.parametrize("shape", [(512, 512, 3), (427, 640, 3), (1400, 300, 3), (800, 1200, 3)])
def test_numpy_resize_equals_resize_shortest_edge(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = ResizeShortestEdge([800, 800], 1333).get_transform(image).apply_image(image)
    assert np.array_equal(resize_shortest_edge(image, 800, 1333), expected)


def test_numpy_panoptic_merge_equals_torch_merge():
    rng = np.random.default_rng(2)
    masks = rng.random((12, 64, 80)) > 0.6
    scores = rng.random(12).astype(np.float32)
    classes = rng.integers(0, 5, 12)
    semantic = rng.integers(0, 4, (64, 80))
    semantic[:, :40] = 2  # one stuff region large enough to survive the area threshold
    settings = {"overlap_thresh": 0.5, "stuff_area_thresh": 300, "instances_score_thresh": 0.3}
    instances = Instances(
        (64, 80),
        pred_boxes=Boxes(torch.zeros(12, 4)),
        scores=torch.from_numpy(scores),
        pred_classes=torch.from_numpy(classes),
        pred_masks=torch.from_numpy(masks),
    )
    ids, segments = combine_semantic_and_instance_outputs(
        instances, torch.from_numpy(semantic), **settings
    )
    ours, our_segments = combine_panoptic(scores, classes, masks, semantic, **settings)
    assert len(segments) > 2 and np.array_equal(ours, ids.numpy())
    assert our_segments == segments


def _fast_rcnn(tmp_path):
    from masktron import model_zoo
    from masktron.models.build import build_model

    cfg = model_zoo.get_config("COCO-Detection/fast_rcnn_R_50_FPN_1x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    return build_model(cfg).eval()


def test_a_part_without_export_mode_is_named_and_nothing_is_written(tmp_path):
    model = _fast_rcnn(tmp_path)
    with pytest.raises(ExportError, match="proposal_generator.*precomputed proposals"):
        export_detector(model, tmp_path / "fast.onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_roi_heads_subclass_is_refused_by_name():
    from masktron import model_zoo
    from masktron.models.build import build_model
    from masktron.models.roi_heads import StandardROIHeads

    cfg = model_zoo.get_config("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    model = build_model(cfg).eval()

    class CustomHeads(StandardROIHeads):
        pass

    model.roi_heads.__class__ = CustomHeads
    with pytest.raises(ExportError, match=r"roi_heads \(CustomHeads\)"):
        DetectorOnnxModel(model)


def test_a_failed_trace_leaves_no_file(tmp_path, monkeypatch):
    from masktron import model_zoo
    from masktron.models.build import build_model

    cfg = model_zoo.get_config("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    model = build_model(cfg).eval()

    def broken_export(*args, **kwargs):
        args[2].write(b"half a graph")  # the buffer gets something, then the exporter fails
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(ExportError, match="unsupported operator"):
        export_detector(model, tmp_path / "retinanet.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_runtime_side_imports_without_torch():
    code = (
        "import sys; import masktron.export.onnx_runtime, masktron.cli.predict_onnx; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""Detectors (Faster/Mask R-CNN, RetinaNet, Panoptic FPN) as one ONNX graph each.

The graph is the model's own inference, traced: the same modules and post-processing
functions, whose data-dependent steps have an export mode (a top-k whose size is computed
in the graph, filters that stay in the graph, per-class NMS by the coordinate offset trick
on ONNX `NonMaxSuppression`, RoIAlign as ONNX `RoiAlign` in `half_pixel` mode, which is
Detectron2's `aligned=True` with the same adaptive sampling; see docs/export.md).

Input:
    image: (1, 3, H, W) float32, 0-255, in the model's channel order (`input_format`), already
        resized by the test-time rule (`ResizeShortestEdge`, PIL bilinear on uint8). Any H, W.

Outputs, in the pixels of `image`:
    boxes: (N, 4) float32 XYXY; scores: (N,) float32; classes: (N,) int64 (0..K-1), best first.
    masks: (N, 1, M, M) float32 probabilities in each box's frame (Mask R-CNN, Panoptic FPN).
    sem_seg: (1, C, H, W) float32 semantic logits (Panoptic FPN).

Rescaling to the original image, mask pasting and the panoptic merge run outside the graph
(`masktron.export.onnx_runtime`), as `detector_postprocess` does in PyTorch.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.export.onnx_runtime import FORMAT
from masktron.models.panoptic_fpn import PanopticFPN
from masktron.models.rcnn import DetectorInput, GeneralizedRCNN
from masktron.models.retinanet import RetinaNet, retinanet_inference_single_image
from masktron.models.roi_heads import (
    FastRCNNOutputLayers,
    MaskRCNNConvUpsampleHead,
    Res5ROIHeads,
    StandardROIHeads,
)
from masktron.models.rpn import RPN
from masktron.structures import ImageList, Instances

__all__ = ["DetectorOnnxModel", "ExportError", "export_detector"]

METADATA_KEYS = (
    "thing_classes",
    "thing_colors",
    "stuff_classes",
    "stuff_colors",
    "thing_dataset_id_to_contiguous_id",
    "stuff_dataset_id_to_contiguous_id",
    "ignore_label",
    "label_divisor",
)


class ExportError(RuntimeError):
    """A model, or a part of it, that cannot be exported; the message names the part."""


def _check_exportable(model: nn.Module) -> None:
    """Raise `ExportError` naming the first part that has no export mode."""
    name = type(model).__name__
    if type(model) not in (GeneralizedRCNN, PanopticFPN, RetinaNet):
        raise ExportError(
            f"{name} cannot be exported to ONNX: export supports GeneralizedRCNN (Faster/Mask "
            "R-CNN), RetinaNet and PanopticFPN"
        )
    if isinstance(model, RetinaNet):
        return
    if model.proposal_generator is None:
        raise ExportError(
            "proposal_generator: this model reads precomputed proposals (Fast R-CNN, "
            "PROPOSAL_GENERATOR.NAME = 'PrecomputedProposals'), which an image-only ONNX graph "
            "cannot take; export a model with an RPN"
        )
    if type(model.proposal_generator) is not RPN:
        raise ExportError(
            f"proposal_generator ({type(model.proposal_generator).__name__}) has "
            "no ONNX export mode; RPN has"
        )
    heads: Any = model.roi_heads
    if type(heads) not in (StandardROIHeads, Res5ROIHeads):
        raise ExportError(
            f"roi_heads ({type(heads).__name__}) has no ONNX export mode; StandardROIHeads and "
            "Res5ROIHeads have"
        )
    if type(heads.box_predictor) is not FastRCNNOutputLayers:
        raise ExportError(
            f"roi_heads.box_predictor ({type(heads.box_predictor).__name__}) has "
            "no ONNX export mode"
        )
    if getattr(heads, "keypoint_on", False):
        raise ExportError("roi_heads.keypoint_head has no ONNX export mode")
    if heads.mask_on and type(heads.mask_head) is not MaskRCNNConvUpsampleHead:
        raise ExportError(
            f"roi_heads.mask_head ({type(heads.mask_head).__name__}) has no ONNX export mode"
        )


class DetectorOnnxModel(nn.Module):
    """A detector's inference on one image tensor, with the tensor outputs of the module
    docstring: what `export_detector` traces.

    Args:
        model: a `GeneralizedRCNN` (with an RPN), `RetinaNet` or `PanopticFPN`, in eval mode.

    Raises:
        ExportError: for a model or part without an export mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        _check_exportable(model)
        assert isinstance(model, DetectorInput)  # every family _check_exportable accepts
        self.model: DetectorInput = model
        self.mask_on = isinstance(model, GeneralizedRCNN) and model.roi_heads.mask_on
        self.panoptic = isinstance(model, PanopticFPN)

    def output_names(self) -> list[str]:
        names = ["boxes", "scores", "classes"]
        if self.mask_on:
            names.append("masks")
        if self.panoptic:
            names.append("sem_seg")
        return names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(1, 3, H, W) image -> the outputs of `output_names()`, shapes in the module docstring."""
        model = self.model
        height, width = image.shape[-2], image.shape[-1]
        x = (image[0] - model.pixel_mean) / model.pixel_std  # (1, 3, H, W) -> (3, H, W)
        # Bottom/right zero padding to the backbone's divisibility, sizes computed in the graph.
        div = max(int(model.backbone.size_divisibility), 1)
        pad = [0, (div - width % div) % div, 0, (div - height % div) % div]
        x = F.pad(x, cast(list[int], pad))  # traced sizes: the padding is computed in the graph
        images = ImageList(x[None], [(height, width)])  # (3, Hp, Wp) -> (1, 3, Hp, Wp)
        if isinstance(model, RetinaNet):
            return self._detections(self._retinanet(model, images))
        assert isinstance(model, GeneralizedRCNN)
        features = model.backbone(images.tensor)
        proposals, _ = model._proposals(images, features, [], None)
        detections, _ = model.roi_heads(images, features, proposals, None)
        outputs = self._detections(detections[0])
        if isinstance(model, PanopticFPN):
            sem_seg, _ = model.sem_seg_head(features)
            outputs += (sem_seg[:, :, :height, :width],)  # (1, C, Hp, Wp) -> (1, C, H, W)
        return outputs

    def _detections(self, inst: Instances) -> tuple[torch.Tensor, ...]:
        outputs: tuple[torch.Tensor, ...] = (inst.pred_boxes.tensor, inst.scores, inst.pred_classes)
        if self.mask_on:
            outputs += (inst.pred_masks,)
        return outputs

    @staticmethod
    def _retinanet(model: RetinaNet, images: ImageList) -> Instances:
        anchors, logits, deltas = model._predict(images.tensor)
        return retinanet_inference_single_image(
            anchors,
            [x[0].sigmoid() for x in logits],
            [x[0] for x in deltas],
            images.image_sizes[0],
            box2box_transform=model.box2box_transform,
            score_thresh=model.test_score_thresh,
            topk_candidates=model.test_topk_candidates,
            nms_thresh=model.test_nms_thresh,
            max_detections=model.max_detections_per_image,
        )


def score_threshold(model: nn.Module) -> float:
    """The score threshold baked into the graph: detections below it are never output."""
    if isinstance(model, RetinaNet):
        return float(model.test_score_thresh)
    heads: Any = model.roi_heads
    return float(heads.box_predictor.test_score_thresh)


def export_metadata(
    model: nn.Module,
    *,
    min_size_test: int,
    max_size_test: int,
    metadata: dict[str, Any] | None,
) -> dict[str, str]:
    """The `metadata_props` of an exported detector: what a runtime needs besides the graph."""
    props = {
        "masktron.format": FORMAT,
        "masktron.meta_architecture": type(model).__name__,
        "masktron.input_format": str(getattr(model, "input_format", "BGR")),
        "masktron.resize": json.dumps(
            {
                "rule": "ResizeShortestEdge",
                "min_size": int(min_size_test),
                "max_size": int(max_size_test),
                "interp": "PIL bilinear on uint8",
            }
        ),
        "masktron.score_thresh": repr(score_threshold(model)),
        "masktron.mask_threshold": "0.5",
    }
    if isinstance(model, PanopticFPN):
        props["masktron.panoptic"] = json.dumps(
            {
                "overlap_thresh": model.combine_overlap_thresh,
                "stuff_area_thresh": model.combine_stuff_area_thresh,
                "instances_score_thresh": model.combine_instances_score_thresh,
            }
        )
    if metadata:
        chosen = {k: metadata[k] for k in METADATA_KEYS if metadata.get(k) is not None}
        # JSON keys are strings: id maps travel as lists of [dataset id, contiguous id]
        for key in ("thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id"):
            if key in chosen:
                chosen[key] = [[int(k), int(v)] for k, v in chosen[key].items()]
        props["masktron.metadata"] = json.dumps(chosen)
    return props


def export_detector(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    min_size_test: int = 800,
    max_size_test: int = 1333,
    metadata: dict[str, Any] | None = None,
    opset: int = 18,
    example_size: tuple[int, int] = (320, 448),
) -> str:
    """Write `model` (eval mode, CPU) to one ONNX file with its pre-processing metadata.

    The graph's inputs and outputs are described in this module's docstring; H and W are
    dynamic, the batch is one image. The file appears only when complete and checked
    (written under a temporary name, then renamed).

    Args:
        model: a `GeneralizedRCNN` (Faster/Mask R-CNN with FPN, C4 or DC5 backbones),
            `RetinaNet` or `PanopticFPN`.
        path: the `.onnx` file to write.
        min_size_test, max_size_test: the test-time resize rule (`INPUT.MIN/MAX_SIZE_TEST`).
        metadata: dataset metadata (`MetadataCatalog.get(name).as_dict()`): class names,
            colours and id maps stored in the file for drawings and COCO JSON.
        opset: ONNX opset, 16 or newer (RoiAlign's `half_pixel` mode).
        example_size: (H, W) of the random image the graph is traced with.

    Returns:
        The path written.

    Raises:
        ExportError: for a model or a part without an export mode (nothing is written).
    """
    import onnx

    if opset < 16:
        raise ValueError(f"opset must be at least 16 (RoiAlign half_pixel), got {opset}")
    wrapper = DetectorOnnxModel(model).eval()  # raises before anything is written
    props = export_metadata(
        model, min_size_test=min_size_test, max_size_test=max_size_test, metadata=metadata
    )
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    example = torch.rand((1, 3, *example_size), generator=generator) * 255
    names = wrapper.output_names()
    dynamic: dict[str, dict[int, str]] = {"image": {2: "height", 3: "width"}}
    dynamic.update({name: {0: "detections"} for name in names})
    if "sem_seg" in dynamic:
        dynamic["sem_seg"] = {2: "height", 3: "width"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns about every traced size and comparison; the graph is checked
        # against the eager model by the tests instead.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                (example.to(device),),
                cast(Any, buffer),  # the TorchScript-based exporter writes to file objects
                dynamo=False,
                input_names=["image"],
                output_names=names,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
            )
        except Exception as e:
            raise ExportError(f"tracing {type(model).__name__} for ONNX failed: {e}") from e
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in props.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    return _write_atomically(graph, path)


def _write_atomically(graph: Any, path: str | os.PathLike) -> str:
    import onnx

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(graph, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

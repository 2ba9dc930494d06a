"""`GeneralizedRCNN`: backbone -> proposal generator -> RoI heads (Faster/Mask R-CNN), or
backbone -> precomputed proposals -> RoI heads (Fast R-CNN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from masktron.backbones.backbone import Backbone
from masktron.config.configurable import configurable
from masktron.models.postprocessing import detector_postprocess
from masktron.structures import ImageList, Instances


def preprocess_images(
    batched_inputs: list[dict[str, Any]],
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
) -> ImageList:
    """The input step shared by every detector: each dict's (C, H, W) `image`, moved to the
    device of `pixel_mean`, normalised by (C, 1, 1) mean and std, padded into one batch."""
    images = []
    for x in batched_inputs:
        if "image" not in x:
            raise KeyError("each input dict needs an 'image' (3, H, W) tensor")
        image = x["image"].to(pixel_mean.device)
        if image.dim() != 3 or image.shape[0] != pixel_mean.shape[0]:
            channels = pixel_mean.shape[0]
            raise ValueError(f"images must be ({channels}, H, W), got {tuple(image.shape)}")
        images.append((image - pixel_mean) / pixel_std)
    return ImageList.from_tensors(images, size_divisibility)


class DetectorInput(nn.Module):
    """What every Detectron2-style detector does with its input dicts: hold the pixel
    normalisation, and normalise and pad `image` tensors into an `ImageList` for its backbone.

    Args:
        backbone: features with `size_divisibility`.
        pixel_mean, pixel_std: per-channel normalisation, in `input_format` order.
        input_format: "BGR" or "RGB": the channel order the weights expect.
    """

    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        *,
        backbone: Backbone,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ):
        super().__init__()
        self.backbone = backbone
        self.input_format = input_format
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if self.pixel_mean.shape != self.pixel_std.shape:
            raise ValueError("pixel_mean and pixel_std must have the same length")

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        """Normalise each image and pad them into one batch (to the backbone's divisibility)."""
        return preprocess_images(
            batched_inputs, self.pixel_mean, self.pixel_std, self.backbone.size_divisibility
        )


class GeneralizedRCNN(DetectorInput):
    """Two-stage detector with Detectron2's input and output format.

    `forward(batched_inputs)` takes a list of dicts, one per image: `image` (3, H, W) tensor in
    `input_format` channel order with 0-255 values, resized already; optional `height`, `width`
    (the size wanted for the output, normally the original image's); in training `instances`
    with `gt_boxes`, `gt_classes` (and `gt_masks`); without a proposal generator, `proposals`
    (`Instances` of the image's (H, W) with `proposal_boxes` in its pixels and
    `objectness_logits`, as `DatasetMapper` makes them from a proposal file). Inference returns
    a list of `{"instances": Instances}`; training returns a dict of losses.

    Args:
        backbone: features with `size_divisibility`.
        proposal_generator: e.g. `RPN`; None (Fast R-CNN) reads each input's `proposals`.
        roi_heads: e.g. `StandardROIHeads`.
        pixel_mean, pixel_std: per-channel normalisation, in `input_format` order.
        input_format: "BGR" or "RGB": the channel order the weights expect.
        vis_period: accepted for Detectron2's signature; masktron visualises through hooks.

    Also built as Detectron2's `GeneralizedRCNN(cfg)` (`@configurable`), which is how a
    subclass registered in `META_ARCH_REGISTRY` is built.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module | None,
        roi_heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
        vis_period: int = 0,
    ):
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.vis_period = vis_period

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """Detectron2's `GeneralizedRCNN(cfg)`: every part built from the config."""
        from masktron.models.build import rcnn_kwargs

        return rcnn_kwargs(cfg)

    def forward(self, batched_inputs: list[dict[str, Any]]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        if any("instances" not in x for x in batched_inputs):
            raise KeyError("training inputs need 'instances' with gt_boxes and gt_classes")
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self._proposals(images, features, batched_inputs, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**detector_losses, **proposal_losses}

    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ) -> list[Any]:
        """Detections per image: rescaled to `height` x `width` when `do_postprocess`.

        With `detected_instances` (per image, `pred_boxes` and `pred_classes` in the input
        image's frame), only the mask/keypoint heads run, on those boxes (as Detectron2 does,
        e.g. for test-time augmentation).
        """
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        if detected_instances is not None:
            given = [x.to(self.device) for x in detected_instances]
            heads: Any = self.roi_heads  # any RoI heads with forward_with_given_boxes
            results = heads.forward_with_given_boxes(features, given)
        else:
            proposals, _ = self._proposals(images, features, batched_inputs, None)
            results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return results
        return self._postprocess(results, batched_inputs, images.image_sizes)

    def _proposals(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        batched_inputs: list[dict[str, Any]],
        gt_instances: list[Instances] | None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """The proposal generator's proposals and losses, or the inputs' precomputed ones."""
        if self.proposal_generator is not None:
            return self.proposal_generator(images, features, gt_instances)
        missing = [i for i, x in enumerate(batched_inputs) if "proposals" not in x]
        if missing:
            raise ValueError(
                f"this model has no proposal generator (MODEL.PROPOSAL_GENERATOR.NAME = "
                f"'PrecomputedProposals') and needs precomputed proposals, but input(s) {missing} "
                "have no 'proposals'. Load them with MODEL.LOAD_PROPOSALS = True and "
                "DATASETS.PROPOSAL_FILES_TEST through build_detection_test_loader(cfg, name) "
                "(DATASETS.PROPOSAL_FILES_TRAIN for training), or give each input dict "
                "'proposals': Instances with proposal_boxes and objectness_logits"
            )
        proposals = [x["proposals"].to(self.device) for x in batched_inputs]
        for i, (p, size) in enumerate(zip(proposals, images.image_sizes)):
            if tuple(p.image_size) != tuple(size):
                raise ValueError(
                    f"input {i}: its proposals are for an image of (H, W) = {p.image_size} but "
                    f"the image is {tuple(size)}: transform them with the image (DatasetMapper "
                    "does, given precomputed_proposal_topk)"
                )
        return proposals, {}

    @staticmethod
    def _postprocess(
        results: list[Instances],
        batched_inputs: list[dict[str, Any]],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Instances]]:
        processed = []
        for result, inputs, size in zip(results, batched_inputs, image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            processed.append({"instances": detector_postprocess(result, height, width)})
        return processed

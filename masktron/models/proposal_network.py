"""`ProposalNetwork`: a backbone and an RPN alone, returning class-agnostic box proposals.

Detectron2's `rpn_R_50_{C4,FPN}_1x` models: trained with the RPN losses only, evaluated by
proposal recall (AR@100, AR@1000), and used to precompute the proposals a Fast R-CNN reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from masktron.backbones.backbone import Backbone
from masktron.config.configurable import configurable
from masktron.models.postprocessing import detector_postprocess
from masktron.models.rcnn import DetectorInput
from masktron.models.rpn import RPN


class ProposalNetwork(DetectorInput):
    """Backbone + proposal generator with Detectron2's input and output format.

    `forward(batched_inputs)` takes the dicts `GeneralizedRCNN` takes. Inference returns one
    `{"proposals": Instances}` per image, with `proposal_boxes` (XYXY, rescaled to the
    `height` x `width` asked for, normally the original image's, clipped, empty boxes dropped)
    and `objectness_logits`, in decreasing objectness; training returns the RPN losses.

    Args:
        backbone: features with `size_divisibility`.
        proposal_generator: the RPN.
        pixel_mean, pixel_std: per-channel normalisation, in `input_format` order.
        input_format: "BGR" or "RGB": the channel order the weights expect.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: RPN,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
    ):
        super().__init__(
            backbone=backbone, pixel_mean=pixel_mean, pixel_std=pixel_std, input_format=input_format
        )
        self.proposal_generator = proposal_generator

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """Detectron2's `ProposalNetwork(cfg)`: the backbone and RPN built from the config."""
        from masktron.models.build import proposal_network_kwargs

        return proposal_network_kwargs(cfg)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        if self.training:
            if any("instances" not in x for x in batched_inputs):
                raise KeyError("training inputs need 'instances' with gt_boxes")
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            _, losses = self.proposal_generator(images, features, gt_instances)
            return losses
        proposals, _ = self.proposal_generator(images, features, None)
        processed = []
        for result, inputs, size in zip(proposals, batched_inputs, images.image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            processed.append({"proposals": detector_postprocess(result, height, width)})
        return processed

"""`Sam`: image encoder + prompt encoder + mask decoder, with SAM's pre- and post-processing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.image_encoder import ImageEncoderViT
from masktron.models.sam.mask_decoder import MaskDecoder
from masktron.models.sam.prompt_encoder import PromptEncoder

# ImageNet statistics in 0-255 RGB, as SAM was trained.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class Sam(nn.Module):
    """Segment Anything: predicts object masks from an image and prompts.

    For interactive use wrap it in `SamPredictor` (the image embedding is computed once and reused
    for every prompt); `forward` runs the whole model on a list of images with their prompts.

    Args:
        image_encoder: ViT producing the (B, 256, 64, 64) image embedding.
        prompt_encoder: embeds points, boxes and masks.
        mask_decoder: predicts masks and their IoUs.
        pixel_mean: per-channel mean of 0-255 RGB pixels.
        pixel_std: per-channel standard deviation of 0-255 RGB pixels.
    """

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    # "fp32" unless `masktron.models.sam.precision.set_sam_precision` converted the model.
    inference_precision: str = "fp32"
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        *,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: Sequence[float] = PIXEL_MEAN,
        pixel_std: Sequence[float] = PIXEL_STD,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # Not in Meta's checkpoints: non-persistent buffers.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @torch.no_grad()
    def forward(
        self, batched_input: list[dict[str, Any]], multimask_output: bool
    ) -> list[dict[str, torch.Tensor]]:
        """Predict masks end to end for several images (Meta's `Sam.forward` contract).

        Args:
            batched_input: one dict per image with
                `image` (3, H, W) float/uint8 tensor already resized by `ResizeLongestSide`,
                `original_size` (H0, W0) before resizing, and optionally `point_coords` (B, N, 2),
                `point_labels` (B, N), `boxes` (B, 4) in the resized frame and `mask_inputs`
                (B, 1, 256, 256).
            multimask_output: return 3 masks per prompt instead of 1.

        Returns:
            One dict per image: `masks` (B, M, H0, W0) bool, `iou_predictions` (B, M) and
            `low_res_logits` (B, M, 256, 256).
        """
        images = torch.stack([self.preprocess(x["image"]) for x in batched_input], dim=0)
        embeddings = self.image_encoder(images)
        outputs = []
        for record, embedding in zip(batched_input, embeddings):
            points = None
            if "point_coords" in record:
                points = (record["point_coords"], record["point_labels"])
            sparse, dense = self.prompt_encoder(
                points=points, boxes=record.get("boxes"), masks=record.get("mask_inputs")
            )
            low_res, iou = self.mask_decoder(
                image_embeddings=embedding.unsqueeze(0),
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            masks = self.postprocess_masks(
                low_res,
                input_size=tuple(record["image"].shape[-2:]),
                original_size=tuple(record["original_size"]),
            )
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou,
                    "low_res_logits": low_res,
                }
            )
        return outputs

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: Sequence[int],
        original_size: Sequence[int],
    ) -> torch.Tensor:
        """Low-res logits -> logits at the original image size.

        Upsamples to the padded encoder input (bilinear, as SAM), removes the padding, then
        resizes to the original size.

        Args:
            masks: (B, M, 256, 256) logits.
            input_size: (H, W) of the resized image before padding.
            original_size: (H0, W0) of the image given by the user.

        Returns:
            (B, M, H0, W0) float logits.
        """
        size = self.image_encoder.img_size
        masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : int(input_size[0]), : int(input_size[1])]
        return F.interpolate(
            masks, tuple(int(s) for s in original_size), mode="bilinear", align_corners=False
        )

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, W) 0-255 RGB, long side <= img_size -> normalised, zero-padded (3, S, S)."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        size = self.image_encoder.img_size
        return F.pad(x, (0, size - w, 0, size - h))

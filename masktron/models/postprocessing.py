"""Turning detections on the network's resized input into results on the original image."""

from __future__ import annotations

import torch

from masktron.layers import paste_masks_in_image
from masktron.structures import Instances


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale boxes (x and y separately) to the output size, clip them, drop empty ones, and
    paste (R, 1, M, M) mask probabilities into (R, H, W) bool masks.

    Args:
        results: detections (`pred_boxes`) or proposals (`proposal_boxes`) in the coordinates
            of the network input (`results.image_size`).
        output_height, output_width: the size wanted, usually the original image's.
    """
    scale_x = output_width / results.image_size[1]
    scale_y = output_height / results.image_size[0]
    out = Instances((output_height, output_width), **results.get_fields())
    if out.has("pred_boxes"):
        boxes = out.pred_boxes
    elif out.has("proposal_boxes"):
        boxes = out.proposal_boxes
    else:
        raise ValueError("results to rescale need pred_boxes or proposal_boxes")
    boxes.scale(scale_x, scale_y)
    boxes.clip(out.image_size)
    out = out[boxes.nonempty()]
    if out.has("pred_masks"):
        masks = out.pred_masks
        if masks.dim() == 4:
            masks = masks[:, 0]  # (R, 1, M, M) -> (R, M, M)
        out.pred_masks = paste_masks_in_image(
            masks, out.pred_boxes.tensor, (output_height, output_width), threshold=mask_threshold
        )
    if out.has("pred_keypoints"):  # (R, K, 3): x, y, score
        keypoints = out.pred_keypoints.clone()
        keypoints[:, :, 0] *= scale_x
        keypoints[:, :, 1] *= scale_y
        out.pred_keypoints = keypoints
    return out


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Crop (C, H_pad, W_pad) semantic logits to the unpadded input `img_size` and resize them
    bilinearly to (C, output_height, output_width)."""
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)  # (1, C, h, w)
    result = torch.nn.functional.interpolate(
        result, size=(output_height, output_width), mode="bilinear", align_corners=False
    )
    return result[0]

"""SAM 2's image pre-processing, prompt coordinates and mask up-sampling (Meta's conventions).

SAM 2 squashes every image to a square `resolution` x `resolution` input (no aspect-preserving
resize, no padding, unlike SAM), normalised with ImageNet's mean and std. Prompt coordinates are
therefore scaled per axis: x by resolution / W, y by resolution / H.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from masktron.layers.connected_components import connected_components

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SAM2Transforms:
    """Image -> model input, prompts -> input frame, low-res logits -> image frame.

    Args:
        resolution: the model's square input size (`SAM2Base.image_size`, 1024).
        mask_threshold: logit threshold of the binary masks.
        max_hole_area, max_sprinkle_area: fill holes / remove islands of at most this many
            pixels of the low-res logits (0: off, the default), as Meta's post-processing with
            its CUDA extension (Meta's package without the extension skips it with a warning).
    """

    def __init__(
        self,
        resolution: int,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.resolution = int(resolution)
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (3, R, R) float32, resized (bilinear, antialiased), normalised."""
        x = torch.from_numpy(np.array(image, dtype=np.uint8))  # a copy: inputs may be read-only
        x = x.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        x = x.contiguous().float().div(255)
        x = TF.resize(x, [self.resolution, self.resolution], antialias=True)
        return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))

    def forward_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Several images -> (B, 3, R, R), each transformed alone (sizes may differ)."""
        return torch.stack([self(image) for image in images])

    def transform_coords(
        self,
        coords: torch.Tensor,
        normalize: bool = False,
        orig_hw: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """(..., 2) XY -> the model's input frame.

        Args:
            coords: XY in pixels of the original image when `normalize`, else in [0, 1].
            normalize: divide by the image's (W, H) first (needs `orig_hw`).
            orig_hw: (H, W) of the original image.
        """
        if normalize:
            if orig_hw is None:
                raise ValueError("transform_coords(normalize=True) needs orig_hw")
            h, w = orig_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * self.resolution

    def transform_boxes(
        self,
        boxes: torch.Tensor,
        normalize: bool = False,
        orig_hw: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """(B, 4) XYXY -> (B, 2, 2) corner points in the model's input frame."""
        return self.transform_coords(
            boxes.reshape(-1, 2, 2), normalize, orig_hw
        )  # (B, 4) -> (B, 2, 2)

    def postprocess_masks(self, masks: torch.Tensor, orig_hw: Sequence[int]) -> torch.Tensor:
        """(B, C, h, w) low-res logits -> (B, C, H, W) logits at the original image size.

        With `max_hole_area` > 0, background regions (8-connected, logits <= threshold) of at
        most that many low-res pixels become foreground (threshold + 10); with
        `max_sprinkle_area` > 0, foreground regions that small become background (threshold -
        10); both are found on the input logits, as Meta's post-processing does with its CUDA
        extension (here plain torch ops, on every device).
        """
        masks = masks.float()
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            flat = masks.flatten(0, 1).unsqueeze(1)  # (B, C, h, w) -> (B*C, 1, h, w)
            thr = self.mask_threshold
            if self.max_hole_area > 0:
                labels, areas = connected_components(flat <= thr)
                is_hole = ((labels > 0) & (areas <= self.max_hole_area)).reshape_as(masks)
                masks = torch.where(is_hole, thr + 10.0, masks)
            if self.max_sprinkle_area > 0:
                labels, areas = connected_components(flat > thr)
                is_sprinkle = ((labels > 0) & (areas <= self.max_sprinkle_area)).reshape_as(masks)
                masks = torch.where(is_sprinkle, thr - 10.0, masks)
        size = (int(orig_hw[0]), int(orig_hw[1]))
        return F.interpolate(masks, size, mode="bilinear", align_corners=False)

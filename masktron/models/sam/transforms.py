"""`ResizeLongestSide`: SAM's resize of images (long side -> 1024) and of prompts with them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


class ResizeLongestSide:
    """Resize so that the longest side is `target_length`; map point/box coordinates alike.

    Coordinates are XY in pixels; boxes are XYXY. The numpy methods return float64 copies, the
    torch methods float32 copies; inputs are never modified.

    Args:
        target_length: the long side after resizing (the encoder's input size, 1024).
    """

    def __init__(self, target_length: int) -> None:
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """(h, w) after scaling (oldh, oldw) so the long side is `long_side_length`, rounded."""
        scale = long_side_length * 1.0 / max(oldh, oldw)
        return int(oldh * scale + 0.5), int(oldw * scale + 0.5)

    def _scales(self, original_size: Sequence[int]) -> tuple[float, float]:
        old_h, old_w = int(original_size[0]), int(original_size[1])
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        return new_w / old_w, new_h / old_h

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> resized (h, w, C) uint8, with PIL's bilinear filter (as SAM)."""
        h, w = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """(..., 2) XY in the original (H, W) frame -> the resized frame, float64."""
        sx, sy = self._scales(original_size)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """(B, 4) or (4,) XYXY in the original frame -> (B, 4) in the resized frame."""
        corners = np.asarray(boxes).reshape(-1, 2, 2)  # (B, 4) -> (B, 2 corners, xy)
        return self.apply_coords(corners, original_size).reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> resized, antialiased bilinear (close to, not equal to, PIL)."""
        size = self.get_preprocess_shape(image.shape[-2], image.shape[-1], self.target_length)
        return F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: Sequence[int]
    ) -> torch.Tensor:
        """(..., 2) XY tensor in the original frame -> float32 tensor in the resized frame."""
        sx, sy = self._scales(original_size)
        out = coords.to(torch.float32, copy=True)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: Sequence[int]) -> torch.Tensor:
        """(B, 4) XYXY tensor in the original frame -> (B, 4) float32 in the resized frame."""
        corners = boxes.reshape(-1, 2, 2)  # (B, 4) -> (B, 2 corners, xy)
        return self.apply_coords_torch(corners, original_size).reshape(-1, 4)

    def invert_coords(self, coords: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """Inverse of `apply_coords`: (..., 2) XY in the resized frame -> the original frame."""
        sx, sy = self._scales(original_size)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] / sx
        out[..., 1] = out[..., 1] / sy
        return out

    def invert_boxes(self, boxes: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """Inverse of `apply_boxes`: (B, 4) XYXY in the resized frame -> the original frame."""
        corners = np.asarray(boxes).reshape(-1, 2, 2)  # (B, 4) -> (B, 2 corners, xy)
        return self.invert_coords(corners, original_size).reshape(-1, 4)

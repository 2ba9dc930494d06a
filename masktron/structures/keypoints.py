"""Keypoints of instances (Detectron2's `Keypoints`): an (N, K, 3) tensor of x, y and a
visibility flag (ground truth, COCO's 0 / 1 / 2) or a score (predictions), in absolute image
pixels, with the conversions between points and the heat maps of the keypoint head."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch


class Keypoints:
    """K keypoints per instance, held as `tensor` (N, K, 3): x, y, visibility.

    Coordinates are continuous image pixels: pixel (i, j) covers [j, j + 1) x [i, i + 1), so a
    COCO keypoint annotated at integer pixel index (x, y) lies at (x + 0.5, y + 0.5), as the
    COCO loader stores it.

    Args:
        keypoints: anything `torch.as_tensor` accepts with shape (N, K, 3).
    """

    def __init__(self, keypoints: Any):
        device = keypoints.device if isinstance(keypoints, torch.Tensor) else torch.device("cpu")
        tensor = torch.as_tensor(keypoints, dtype=torch.float32, device=device)
        if tensor.dim() != 3 or tensor.shape[2] != 3:
            raise ValueError(f"keypoints must have shape (N, K, 3), got {tuple(tensor.shape)}")
        self.tensor = tensor

    def __len__(self) -> int:
        return self.tensor.size(0)

    def to(self, *args: Any, **kwargs: Any) -> Keypoints:
        return type(self)(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to_heatmap(
        self, boxes: torch.Tensor, heatmap_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each keypoint as the flat index of its cell in a `heatmap_size`^2 grid over its box.

        Args:
            boxes: (N, 4) XYXY boxes, one per instance.
            heatmap_size: side of the square grid.

        Returns:
            (N, K) int64 flat indices `y * heatmap_size + x` (0 where invalid), and (N, K)
            int64 validity: visible and inside the box.
        """
        return keypoints_to_heatmap(self.tensor, boxes, heatmap_size)

    def __getitem__(self, item: Any) -> Keypoints:
        """Instances selected by an int, slice, index tensor or boolean mask."""
        if isinstance(item, int):
            return Keypoints(self.tensor[item].unsqueeze(0))  # (K, 3) -> (1, K, 3)
        return Keypoints(self.tensor[item])

    def __repr__(self) -> str:
        return f"Keypoints(num_instances={len(self.tensor)})"

    @staticmethod
    def cat(keypoints_list: list[Keypoints]) -> Keypoints:
        """Concatenate along the instance dimension."""
        if not keypoints_list:
            raise ValueError("Keypoints.cat needs at least one Keypoints")
        return type(keypoints_list[0])(torch.cat([k.tensor for k in keypoints_list], dim=0))


def keypoints_to_heatmap(
    keypoints: torch.Tensor, rois: torch.Tensor, heatmap_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map (N, K, 3) keypoints to flat cell indices of a `heatmap_size`^2 grid over each RoI.

    A keypoint at continuous x falls in cell floor((x - x0) * size / (x1 - x0)); one exactly on
    the right/bottom edge goes to the last cell (Heckbert's discrete/continuous convention, the
    inverse of `heatmaps_to_keypoints`).

    Returns:
        (N, K) int64 flat indices (0 where invalid) and (N, K) int64 validity.
    """
    if rois.numel() == 0:
        empty = rois.new_zeros((0, keypoints.shape[1]), dtype=torch.int64)
        return empty, empty.clone()
    offset_x, offset_y = rois[:, 0:1], rois[:, 1:2]  # (N, 1)
    scale_x = heatmap_size / (rois[:, 2:3] - rois[:, 0:1])
    scale_y = heatmap_size / (rois[:, 3:4] - rois[:, 1:2])
    x, y = keypoints[..., 0], keypoints[..., 1]
    on_right = x == rois[:, 2:3]
    on_bottom = y == rois[:, 3:4]
    xi = ((x - offset_x) * scale_x).floor().long()
    yi = ((y - offset_y) * scale_y).floor().long()
    xi[on_right] = heatmap_size - 1
    yi[on_bottom] = heatmap_size - 1
    inside = (xi >= 0) & (yi >= 0) & (xi < heatmap_size) & (yi < heatmap_size)
    valid = (inside & (keypoints[..., 2] > 0)).long()
    return (yi * heatmap_size + xi) * valid, valid


@functools.lru_cache(maxsize=4096)
def bicubic_resize_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """The (out_size, in_size) float32 matrix of 1-D bicubic resampling as `F.interpolate(mode=
    "bicubic", align_corners=False)` does it (cubic convolution with a = -0.75, source indices
    clamped at the border), so that a 2-D resize is `M_h @ x @ M_w.T`. Cached: box sizes
    repeat, and building it costs more than using it for small boxes."""
    a = -0.75
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    start = np.floor(src)
    t = src - start

    def near(x: np.ndarray) -> np.ndarray:  # taps at distance <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # taps at distance in (1, 2)
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)  # (out, 4)
    taps = np.clip(start[:, None].astype(np.int64) + np.arange(-1, 3), 0, in_size - 1)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.reshape(-1)), weights.reshape(-1))
    return torch.from_numpy(matrix.astype(np.float32))


def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Keypoint locations and scores from per-RoI heat-map logits (Detectron2's rule).

    Each RoI's maps are resized bicubically to the RoI's size in pixels (rounded up); a
    keypoint is the arg-max cell's centre (discrete d -> continuous d + 0.5), scaled back by
    size / ceil(size). Its score is the softmax of that cell over the resized map, normalised
    with the sum over the un-resized map so that scores of small and large objects compare;
    at the arg-max that is 1 / sum(exp(maps - max)).

    The resize is done as two matrix products (the same weights as `F.interpolate`'s bicubic
    mode, several times faster on CPU); results agree with it to float32 rounding.

    Args:
        maps: (R, K, S, S) logits.
        rois: (R, 4) XYXY boxes, in the frame the keypoints are wanted in.

    Returns:
        (R, K, 4): x, y, logit at the maximum, score.
    """
    offset_x, offset_y = rois[:, 0], rois[:, 1]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    num_rois, num_keypoints, map_h, map_w = maps.shape
    out = maps.new_zeros(num_rois, num_keypoints, 4)
    width_corrections = widths / widths_ceil
    height_corrections = heights / heights_ceil
    for i in range(num_rois):
        h, w = int(heights_ceil[i]), int(widths_ceil[i])
        resize_h = bicubic_resize_matrix(map_h, h).to(maps)
        resize_w = bicubic_resize_matrix(map_w, w).to(maps)
        roi_map = resize_h @ maps[i] @ resize_w.T  # (h, S) @ (K, S, S) @ (S, w) -> (K, h, w)
        max_logit, pos = roi_map.reshape(num_keypoints, -1).max(1)  # (K, h, w) -> (K, h*w)
        x_int = pos % w
        y_int = torch.div(pos - x_int, w, rounding_mode="floor")
        pool_sum = (maps[i] - max_logit.view(-1, 1, 1)).exp().sum((1, 2))  # (K,)
        out[i, :, 0] = (x_int.float() + 0.5) * width_corrections[i] + offset_x[i]
        out[i, :, 1] = (y_int.float() + 0.5) * height_corrections[i] + offset_y[i]
        out[i, :, 2] = max_logit
        out[i, :, 3] = 1.0 / pool_sum
    return out

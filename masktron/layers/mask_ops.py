"""Pasting fixed-size mask predictions into the full image, as Detectron2 does.

A mask head predicts an (M, M) probability map per box. `paste_masks_in_image` resamples each
map over its box with `grid_sample`, sampling at pixel centres, and thresholds it. As in
Detectron2: on the CPU each mask is only computed over its box plus one pixel, the rest of the
image is False; on GPUs all masks are resampled over the whole image in a few batched calls
(chunks of about 1 GiB), with no per-instance work on the host and no device-to-host syncs.
The two differ only where a large box's bilinear border spreads more than one pixel past it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

__all__ = ["pad_masks", "paste_mask_in_image_old", "paste_masks_in_image", "scale_boxes"]


def _paste_mask_region(
    masks: torch.Tensor, boxes: torch.Tensor, x0: int, y0: int, x1: int, y1: int
) -> torch.Tensor:
    """Resample (N, 1, M, M) `masks` inside the pixel window [y0:y1, x0:x1] of the image.

    Returns (N, y1 - y0, x1 - x0) float: each box's map sampled at the window's pixel centres,
    zero outside the box.
    """
    bx0, by0, bx1, by1 = torch.split(boxes, 1, dim=1)  # each (N, 1)
    n = masks.shape[0]
    img_y = torch.arange(y0, y1, device=masks.device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0, x1, device=masks.device, dtype=torch.float32) + 0.5
    img_y = (img_y - by0) / (by1 - by0) * 2 - 1  # (N, h) in the box's [-1, 1] frame
    img_x = (img_x - bx0) / (bx1 - bx0) * 2 - 1  # (N, w)
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))  # (N, h, w)
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))  # (N, h, w)
    grid = torch.stack([gx, gy], dim=3)  # (N, h, w, 2)
    if not masks.dtype.is_floating_point:
        masks = masks.float()
    pasted = F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)  # (N, 1, h, w)
    return pasted[:, 0]


# Bytes of float32 resampled masks per batched call on GPUs (Detectron2's GPU_MEM_LIMIT).
_CHUNK_BYTES = 2**30


def _paste_batched(
    masks: torch.Tensor, boxes: torch.Tensor, out: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Fill `out` (N, H, W) with every mask resampled over the whole image, in chunks."""
    n, img_h, img_w = out.shape
    per_chunk = max(1, _CHUNK_BYTES // (img_h * img_w * 4))
    for start in range(0, n, per_chunk):
        part = slice(start, start + per_chunk)
        region = _paste_mask_region(masks[part, None], boxes[part], 0, 0, img_w, img_h)
        out[part] = region >= threshold if threshold >= 0 else region
    return out


def paste_masks_in_image(
    masks: torch.Tensor,
    boxes: Any,
    image_shape: tuple[int, int],
    threshold: float = 0.5,
    *,
    batched: bool | None = None,
) -> torch.Tensor:
    """Paste per-box mask probabilities into full-image masks.

    Args:
        masks: (N, M, M) probabilities in each box's frame.
        boxes: (N, 4) XYXY boxes in the output image's pixels (a tensor or `Boxes`).
        image_shape: (height, width) of the output image.
        threshold: pixels with probability >= threshold are True; < 0 returns probabilities.
        batched: resample over the whole image in batched calls (Detectron2's GPU path);
            None picks it on every device but the CPU.

    Returns:
        (N, H, W) bool masks (float when threshold < 0).
    """
    if masks.shape[-1] != masks.shape[-2]:
        raise ValueError(f"masks must be square, got {tuple(masks.shape)}")
    n = len(masks)
    img_h, img_w = image_shape
    dtype = torch.bool if threshold >= 0 else torch.float32
    out = torch.zeros(n, img_h, img_w, device=masks.device, dtype=dtype)
    if n == 0:
        return out
    boxes = getattr(boxes, "tensor", boxes).to(torch.float32)
    if batched if batched is not None else masks.device.type != "cpu":
        return _paste_batched(masks, boxes, out, threshold)
    # One box at a time, each over its own window: boxes +-1 pixel, clipped to the image.
    lo = torch.clamp(boxes[:, :2].floor() - 1, min=0).to(torch.int64)
    hi_x = torch.clamp(boxes[:, 2].ceil() + 1, max=img_w).to(torch.int64)
    hi_y = torch.clamp(boxes[:, 3].ceil() + 1, max=img_h).to(torch.int64)
    for i in range(n):
        x0, y0 = int(lo[i, 0]), int(lo[i, 1])
        x1, y1 = int(hi_x[i]), int(hi_y[i])
        if x1 <= x0 or y1 <= y0:
            continue
        region = _paste_mask_region(masks[i : i + 1, None], boxes[i : i + 1], x0, y0, x1, y1)[0]
        out[i, y0:y1, x0:x1] = region >= threshold if threshold >= 0 else region
    return out


def pad_masks(masks: torch.Tensor, padding: int) -> tuple[torch.Tensor, float]:
    """Zero-pad (N, M, M) masks by `padding` pixels on every side.

    Returns:
        the (N, M + 2p, M + 2p) masks and the scale (M + 2p) / M by which their boxes must
        grow (`scale_boxes`) for the padded masks to cover the same pixels.
    """
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    return F.pad(masks, (padding, padding, padding, padding)), scale


def scale_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, 4) XYXY boxes scaled by `scale` about their centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5  # (N, 2)
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale  # (N, 2)
    return torch.cat([centre - half, centre + half], dim=1)


def paste_mask_in_image_old(
    mask: torch.Tensor, box: torch.Tensor, img_h: int, img_w: int, threshold: float
) -> torch.Tensor:
    """Detectron2's legacy paste of one (M, M) mask, kept for comparisons.

    The box is truncated to integer pixels; the mask is resized (PIL, bilinear) to cover
    pixels x0..x1 and y0..y1 inclusive, thresholded (`> threshold`; a negative threshold keeps
    the probabilities, scaled to 0..255) and written into an (img_h, img_w) uint8 image,
    clipped at the borders.
    """
    x0, y0, x1, y1 = (int(v) for v in box.to(torch.int32).tolist())
    width, height = x1 - x0 + 1, y1 - y0 + 1  # pixel samples, not geometric extent
    resized = np.asarray(
        Image.fromarray(mask.detach().cpu().float().numpy()).resize(
            (width, height), resample=Image.Resampling.BILINEAR
        )
    )
    if threshold >= 0:
        patch = torch.from_numpy((resized > threshold).astype(np.uint8))
    else:
        patch = torch.from_numpy(resized * 255).to(torch.uint8)
    out = torch.zeros((img_h, img_w), dtype=torch.uint8)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1 + 1, img_w), min(y1 + 1, img_h)
    if cx1 > cx0 and cy1 > cy0:
        out[cy0:cy1, cx0:cx1] = patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out

"""Helpers of automatic mask generation: point grids, crops, stability, boxes, RLE.

Names and conventions follow Meta's `segment_anything.utils.amg`: boxes are XYXY in pixels
(integer pixel indexes of the mask's extreme pixels), crop boxes are [x0, y0, x1, y1) in the full
image, uncompressed RLE is `{"size": [H, W], "counts": [...]}` over the column-major
(Fortran-order) mask starting with a run of zeros, as pycocotools expects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) XY points at the centres of an n x n grid over [0, 1]^2, row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)  # (n, n, 2) -> (n*n, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One point grid per crop layer; layer i has int(n_per_side / scale_per_layer**i) per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: Sequence[int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes of all layers: layer 0 is the whole image, layer i a 2^i x 2^i overlapping grid.

    Args:
        im_size: (H, W).
        n_layers: extra crop layers.
        overlap_ratio: overlap of neighbouring first-layer crops as a fraction of the short side
            (scaled down for later layers).

    Returns:
        XYXY integer boxes and the layer of each.
    """
    im_h, im_w = int(im_size[0]), int(im_size[1])
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = crop_len(im_w, per_side, overlap)
        crop_h = crop_len(im_h, per_side, overlap)
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(x0s, y0s):  # column by column, as Meta's order
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(layer)
    return boxes, layers


def batch_iterator(batch_size: int, *args: Any) -> Iterator[list[Any]]:
    """Yield aligned slices of `batch_size` items from equally long sequences."""
    if not args or any(len(a) != len(args[0]) for a in args):
        raise ValueError("batch_iterator needs sequences of one common length")
    n = len(args[0])
    for start in range(0, n, batch_size):
        yield [a[start : start + batch_size] for a in args]


def calculate_stability_score(
    masks: torch.Tensor, mask_threshold: float, threshold_offset: float
) -> torch.Tensor:
    """IoU of the masks binarised at `threshold + offset` and at `threshold - offset`.

    The high-threshold mask lies inside the low-threshold one, so the IoU is the ratio of
    their areas.

    Args:
        masks: (..., H, W) logits.

    Returns:
        (...) float32; NaN where both masks are empty.
    """
    high = (masks > (mask_threshold + threshold_offset)).sum((-2, -1))
    low = (masks > (mask_threshold - threshold_offset)).sum((-2, -1))
    return high.float() / low.float()


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes (inclusive pixel indexes) of (..., H, W) bool masks; [0, 0, 0, 0] if empty.

    Returns:
        (..., 4) int64.
    """
    h, w = masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=-1)  # (..., H)
    cols = masks.any(dim=-2)  # (..., W)
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    bottom = torch.where(rows, ys, -1).amax(dim=-1)
    top = torch.where(rows, ys, h).amin(dim=-1)
    right = torch.where(cols, xs, -1).amax(dim=-1)
    left = torch.where(cols, xs, w).amin(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = ~rows.any(dim=-1)
    return boxes.masked_fill(empty[..., None], 0)


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: Sequence[int], orig_box: Sequence[int], atol: float = 20.0
) -> torch.Tensor:
    """(N,) bool: the box (in crop coordinates) touches a crop edge that is not an image edge."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig[None, :], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def box_xyxy_to_xywh(box_xyxy: torch.Tensor | np.ndarray) -> Any:
    """(..., 4) XYXY -> XYWH (a copy)."""
    if isinstance(box_xyxy, torch.Tensor):
        return torch.cat([box_xyxy[..., :2], box_xyxy[..., 2:] - box_xyxy[..., :2]], dim=-1)
    box = np.asarray(box_xyxy)
    return np.concatenate([box[..., :2], box[..., 2:] - box[..., :2]], axis=-1)


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """(..., 4) boxes in crop coordinates -> full-image coordinates."""
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """(..., 2) XY points in crop coordinates -> full-image coordinates."""
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return points + torch.tensor([x0, y0], device=points.device)


def uncrop_masks(
    masks: torch.Tensor, crop_box: Sequence[int], orig_h: int, orig_w: int
) -> torch.Tensor:
    """(N, h, w) masks of a crop -> (N, orig_h, orig_w), zero outside the crop."""
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    return F.pad(masks, (x0, orig_w - x1, y0, orig_h - y1), value=0)


def mask_to_rle_pytorch(masks: torch.Tensor) -> list[dict[str, Any]]:
    """(N, H, W) bool masks -> uncompressed RLEs (pycocotools' column-major convention)."""
    n, h, w = masks.shape
    flat = masks.transpose(1, 2).reshape(
        n, h * w
    )  # (N, H, W) -> (N, W, H) -> (N, H*W) column-major
    changes = (flat[:, 1:] != flat[:, :-1]).nonzero()  # (M, 2) rows (mask, position), sorted
    per_mask = torch.bincount(changes[:, 0], minlength=n).tolist()
    bounds = (changes[:, 1] + 1).cpu().numpy()
    starts_with_one = flat[:, 0].cpu().numpy() if n else np.zeros(0, bool)
    out, at = [], 0
    for i in range(n):
        cuts = np.concatenate([[0], bounds[at : at + per_mask[i]], [h * w]])
        at += per_mask[i]
        counts = np.diff(cuts).tolist()
        if starts_with_one[i]:
            counts = [0] + counts
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Uncompressed RLE -> (H, W) bool mask."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    if flat.size != h * w:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {h}*{w}")
    return np.ascontiguousarray(flat.reshape(w, h).T)  # column-major -> (H, W)


def area_from_rle(rle: dict[str, Any]) -> int:
    """Foreground pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed RLE -> COCO compressed RLE with a `str` counts (JSON-serialisable)."""
    from pycocotools import mask as mask_utils

    h, w = uncompressed_rle["size"]
    rle = mask_utils.frPyObjects(uncompressed_rle, h, w)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """Fill holes (`mode="holes"`) or drop islands (`mode="islands"`) smaller than `area_thresh`.

    Regions are 8-connected. When every island is small, the largest one is kept.

    Returns:
        the new (H, W) bool mask and whether it changed.
    """
    from scipy import ndimage

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    working = fill_holes ^ mask.astype(bool)
    regions, n_labels = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel(), minlength=n_labels + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    keep_labels = [0] + small
    if not fill_holes:
        keep_labels = [i for i in range(n_labels + 1) if i not in keep_labels]
        if not keep_labels:
            keep_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, keep_labels), True

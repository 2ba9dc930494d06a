"""Mask helpers for drawing, in numpy: erosion, connected components, label anchors, and one
`VisMask` type for the mask formats Detectron2 code passes (bitmaps, polygons, COCO RLE).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from masktron.structures import BitMasks, PolygonMasks, polygons_to_bitmask

__all__ = [
    "VisMask",
    "anchor_point",
    "as_vis_masks",
    "binarize",
    "connected_components",
    "erode",
]


def erode(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Erode an (h, w) bool mask with a 3x3 cross `iterations` times (outside counts as False)."""
    out = mask.copy()
    if out.size == 0:  # a mask drawn at a small scale can have no rows or columns
        return out
    for _ in range(iterations):
        inner = out.copy()
        inner[1:] &= out[:-1]
        inner[:-1] &= out[1:]
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        inner[0], inner[-1], inner[:, 0], inner[:, -1] = False, False, False, False
        out = inner
    return out


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the 8-connected components of an (H, W) bool mask.

    Works on horizontal runs of pixels: runs in consecutive rows that touch (8-connectivity) are
    joined by min-label propagation with pointer jumping, all in vectorised numpy.

    Returns:
        labels: (H, W) int32, 0 for background and 1..K for the components.
        areas: (K + 1,) int64 pixel counts; areas[0] is the background's.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    diff = np.diff(padded, axis=1)  # (H, W + 1): +1 where a run starts, -1 after it ends
    start_r, start_c = np.nonzero(diff == 1)
    _, end_c = np.nonzero(diff == -1)  # row-major order pairs every end with its start
    n = len(start_r)
    if n == 0:
        return np.zeros((h, w), dtype=np.int32), np.array([h * w], dtype=np.int64)
    stride = w + 2
    start_key = start_r * stride + start_c
    end_key = start_r * stride + end_c  # exclusive end column
    # Runs [s', e') of row r + 1 touching run [s, e) of row r: e' >= s and s' <= e,
    # a contiguous range of the row-major run order.
    lo = np.searchsorted(end_key, (start_r + 1) * stride + start_c, side="left")
    hi = np.searchsorted(start_key, (start_r + 1) * stride + end_c, side="right")
    counts = np.maximum(hi - lo, 0)
    src = np.repeat(np.arange(n), counts)
    dst = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    parent = np.arange(n)
    while True:
        low = np.minimum(parent[src], parent[dst])
        new = parent.copy()
        np.minimum.at(new, src, low)
        np.minimum.at(new, dst, low)
        new = new[new]  # pointer jumping
        if np.array_equal(new, parent):
            break
        parent = new
    roots, comp = np.unique(parent, return_inverse=True)
    comp = comp.reshape(-1).astype(np.int64) + 1  # (n_runs,) component of each run, from 1
    # Paint runs: +label at each start, -label after each end, then a running sum per row.
    paint = np.zeros((h, w + 1), dtype=np.int32)
    paint[start_r, start_c] += comp
    paint[start_r, end_c] -= comp
    labels = np.cumsum(paint, axis=1)[:, :w].astype(np.int32)
    areas = np.bincount(comp, weights=end_c - start_c, minlength=len(roots) + 1).astype(np.int64)
    areas[0] = h * w - areas[1:].sum()
    return labels, areas


def anchor_point(mask: np.ndarray) -> tuple[float, float]:
    """A point inside an (H, W) bool mask to hang a label on, as (x, y) pixel-edge coordinates.

    The median of the mask's pixels (Detectron2's choice), moved to the nearest mask pixel when
    the median falls outside the mask (rings, crescents).
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise ValueError("anchor_point: the mask is empty")
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # the bounding box only
    ys, xs = np.nonzero(mask)
    my, mx = np.median(ys), np.median(xs)
    iy, ix = int(my), int(mx)
    if not mask[iy, ix]:
        nearest = int(np.argmin((ys - my) ** 2 + (xs - mx) ** 2))
        iy, ix = int(ys[nearest]), int(xs[nearest])
    return cols[0] + ix + 0.5, rows[0] + iy + 0.5


class VisMask:
    """One instance mask, as an (H, W) bitmap or as COCO polygons (flat [x0, y0, x1, y1, ...]).

    Polygons are drawn from their vertices at output resolution, bitmaps by upsampling.
    """

    def __init__(self, height: int, width: int, *, bitmap: Any = None, polygons: Any = None):
        self.height, self.width = height, width
        self._area: float | None = None
        self._bitmap = None if bitmap is None else np.asarray(bitmap, dtype=bool)
        self.polygons = None
        if polygons is not None:
            self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1) for p in polygons]
            self.polygons = [p for p in self.polygons if len(p) >= 6]

    @property
    def bitmap(self) -> np.ndarray:
        """(H, W) bool; polygons are rasterised with COCO's pixel-centre rule."""
        if self._bitmap is None:
            self._bitmap = polygons_to_bitmask(self.polygons or [], self.height, self.width)
        return self._bitmap

    def area(self) -> float:
        """Pixel count of the bitmap."""
        if self._area is None:
            self._area = float(np.count_nonzero(self.bitmap))
        return self._area

    def render(self, vis: Any) -> tuple[int, int, np.ndarray] | None:
        """(top, left, (h, w) bool crop) at the output resolution of `vis`, None when empty."""
        if self.polygons is None:
            return vis.upsample_mask(self.bitmap)
        if not self.polygons:
            return None
        scale = np.array([vis.sx, vis.sy])
        # (K*2,) -> (K, 2) xy in output pixels; -0.5 turns pixel edges into Pillow's centres.
        pts = [p.reshape(-1, 2) * scale - 0.5 for p in self.polygons]
        allpts = np.concatenate(pts)
        left, top = np.floor(allpts.min(axis=0)).astype(int) - 1
        right, bottom = np.ceil(allpts.max(axis=0)).astype(int) + 2
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, vis.out_width), min(bottom, vis.out_height)
        if right <= left or bottom <= top:
            return None
        layer = Image.new("1", (right - left, bottom - top), 0)
        draw = ImageDraw.Draw(layer)
        for p in pts:
            draw.polygon([(x - left, y - top) for x, y in p], fill=1)
        return top, left, np.asarray(layer, dtype=bool)


def _one_mask(m: Any, height: int, width: int, where: str) -> VisMask:
    if isinstance(m, dict):
        if "counts" not in m or "size" not in m:
            raise ValueError(f"{where}: an RLE mask needs 'counts' and 'size', got {list(m)}")
        import pycocotools.mask as mask_util

        rle = m
        if isinstance(m["counts"], list):  # uncompressed RLE
            rle = mask_util.frPyObjects(m, *m["size"])
        bitmap = mask_util.decode(rle).astype(bool)
        return VisMask(height, width, bitmap=_check_shape(bitmap, height, width, where))
    if isinstance(m, (list, tuple)):
        return VisMask(height, width, polygons=m)
    if isinstance(m, torch.Tensor):
        m = m.detach().cpu().numpy()
    if isinstance(m, np.ndarray):
        return VisMask(height, width, bitmap=binarize(_check_shape(m, height, width, where)))
    raise ValueError(f"{where}: cannot draw a mask of type {type(m).__name__}")


def binarize(mask: np.ndarray) -> np.ndarray:
    """Bool view of a mask: floats (probabilities) at >= 0.5, other dtypes at != 0."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    return mask >= 0.5 if np.issubdtype(mask.dtype, np.floating) else mask != 0


def _check_shape(bitmap: np.ndarray, height: int, width: int, where: str) -> np.ndarray:
    if bitmap.shape != (height, width):
        raise ValueError(
            f"{where}: mask shape {tuple(bitmap.shape)} differs from the image's "
            f"({height}, {width}); masks must be pasted to the full image first"
        )
    return bitmap


def as_vis_masks(masks: Any, height: int, width: int, where: str = "masks") -> list[VisMask]:
    """Convert masks for one image into `VisMask`s.

    Args:
        masks: an (N, H, W) bool/0-1 tensor or array, `BitMasks`, `PolygonMasks`, or a list with
            one item per instance: an (H, W) array/tensor, a list of flat polygons, or a COCO RLE
            dict (compressed or not).
        where: names the argument in error messages.
    """
    if isinstance(masks, BitMasks):
        masks = masks.tensor
    if isinstance(masks, PolygonMasks):
        return [VisMask(height, width, polygons=p) for p in masks.polygons]
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3 or masks.shape[1:] != (height, width):
            raise ValueError(
                f"{where}: expected (N, {height}, {width}) masks matching the image, "
                f"got shape {tuple(masks.shape)}"
            )
        return [VisMask(height, width, bitmap=binarize(m)) for m in masks]
    return [_one_mask(m, height, width, f"{where}[{i}]") for i, m in enumerate(masks)]

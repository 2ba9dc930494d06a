"""`VisImage`: the canvas the Visualizer draws on, and colour parsing.

The canvas is a float32 (H*scale, W*scale, 3) RGB array in [0, 255]. Every shape is drawn by
rasterising a coverage map (bool or [0, 1] float) over the shape's bounding box only, then
alpha-blending one colour through it, so the cost of a shape follows its size, not the image's.
Coordinates of the primitives here are in output pixels; the Visualizer maps image coordinates
(pixel edges: pixel i spans [i, i + 1)) to them with `sx`, `sy`. Colours of the primitives are
(3,) RGB in [0, 255], already parsed: `to_rgb` runs once, where users hand colours in.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from masktron.utils.file_io import atomic_open
from masktron.visualization.text import render_text

__all__ = ["VisImage", "change_brightness", "readable_text_color", "to_rgb"]

# Matplotlib's one-letter colours, which Detectron2 code passes (`edge_color="g"`).
_SHORT_COLORS = {
    "b": (0.0, 0.0, 1.0),
    "g": (0.0, 0.5, 0.0),
    "r": (1.0, 0.0, 0.0),
    "c": (0.0, 0.75, 0.75),
    "m": (0.75, 0.0, 0.75),
    "y": (0.75, 0.75, 0.0),
    "k": (0.0, 0.0, 0.0),
    "w": (1.0, 1.0, 1.0),
}


_BLACK = np.zeros(3, dtype=np.float32)
_MIN_TEXT_LUMA = 140.0


def to_rgb(color: Any) -> np.ndarray:
    """Parse a colour into a (3,) float32 RGB array in [0, 255].

    Accepts matplotlib's one-letter names ("g"), CSS names and hex strings ("green", "#00ff00"),
    and 3 or 4 numbers (a 4th, alpha, is dropped). Numbers that are all <= 1 are read as unit
    colours (matplotlib's, as Detectron2 code passes them), otherwise as 0-255.
    """
    if isinstance(color, str):
        if color in _SHORT_COLORS:
            return np.asarray(_SHORT_COLORS[color], dtype=np.float32) * 255.0
        try:
            return np.asarray(ImageColor.getrgb(color)[:3], dtype=np.float32)
        except ValueError:
            raise ValueError(f"unknown colour name {color!r}") from None
    arr = np.asarray(color, dtype=np.float32).reshape(-1)
    if arr.size not in (3, 4) or not np.isfinite(arr).all():
        raise ValueError(f"a colour needs 3 (or 4) finite numbers, got {color!r}")
    arr = arr[:3]
    if arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(arr, 0.0, 255.0)


def change_brightness(color: np.ndarray, factor: float) -> np.ndarray:
    """Scale a colour's HLS lightness by (1 + factor); factor in [-1, 1], < 0 darkens.

    Args:
        color: (3,) RGB in [0, 255] (already parsed: no unit-colour guessing here).

    Returns:
        (3,) float32 RGB in [0, 255].
    """
    if not -1.0 <= factor <= 1.0:
        raise ValueError(f"brightness factor must be in [-1, 1], got {factor}")
    r, g, b = np.asarray(color, dtype=np.float64) / 255.0
    h, l, s = colorsys.rgb_to_hls(r, g, b)
    l = min(max(l * (1.0 + factor), 0.0), 1.0)
    return np.asarray(colorsys.hls_to_rgb(h, l, s), dtype=np.float32) * 255.0


def readable_text_color(color: np.ndarray) -> np.ndarray:
    """Brighten a (3,) 0-255 colour to read on a dark label background.

    Detectron2's rule (every channel >= 20%, the strongest >= 80%), then, for colours still too
    dark to read on black (deep blues), a mix with white up to a luma of 140.
    """
    c = np.maximum(np.asarray(color, dtype=np.float32), 0.2 * 255.0)
    c[int(np.argmax(c))] = max(0.8 * 255.0, float(c.max()))
    luma = float(c @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    if luma < _MIN_TEXT_LUMA:
        c += (255.0 - c) * (_MIN_TEXT_LUMA - luma) / (255.0 - luma)
    return c


class VisImage:
    """An RGB image being drawn on, stored at (H*scale, W*scale).

    Args:
        img: (H, W, 3) uint8 RGB, the image to draw on.
        scale: output size relative to the image (Detectron2's `scale`).

    Attributes:
        img: the input image; `height`, `width`: its size; `scale`.
        out_height, out_width: the output size; `sx`, `sy`: output pixels per image pixel.
    """

    def __init__(self, img: np.ndarray, scale: float = 1.0):
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"VisImage: scale must be a positive number, got {scale}")
        self.img = img
        self.scale = float(scale)
        self.height, self.width = int(img.shape[0]), int(img.shape[1])
        # The small epsilon matches Detectron2's output size, int(W * scale + 1e-2).
        self.out_height = max(1, int(self.height * self.scale + 1e-2))
        self.out_width = max(1, int(self.width * self.scale + 1e-2))
        self.sx = self.out_width / self.width
        self.sy = self.out_height / self.height
        # Nearest source row/column of each output pixel centre, for upsampling masks.
        self._src_rows = np.minimum(
            ((np.arange(self.out_height) + 0.5) / self.sy).astype(np.int64), self.height - 1
        )
        self._src_cols = np.minimum(
            ((np.arange(self.out_width) + 0.5) / self.sx).astype(np.int64), self.width - 1
        )
        self.reset_image(img)

    def reset_image(self, img: np.ndarray) -> None:
        """Replace the canvas with `img` ((H, W, 3) RGB in [0, 255]), resized to the output."""
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        if pil.size != (self.out_width, self.out_height):
            pil = pil.resize((self.out_width, self.out_height), Image.Resampling.BILINEAR)
        self._canvas = np.asarray(pil, dtype=np.float32).copy()

    def get_image(self) -> np.ndarray:
        """The drawing so far: (out_height, out_width, 3) uint8 RGB (a copy)."""
        return np.clip(np.rint(self._canvas), 0, 255).astype(np.uint8)

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the image; the format follows the extension. Atomic: temp file + os.replace."""
        filepath = os.fspath(filepath)
        ext = os.path.splitext(filepath)[1]
        if ext.lower() not in Image.registered_extensions():
            raise ValueError(f"VisImage.save({filepath!r}): unknown image extension {ext!r}")
        with atomic_open(filepath, "wb") as f:
            Image.fromarray(self.get_image()).save(
                f, format=Image.registered_extensions()[ext.lower()]
            )

    # ----- primitives, in output pixel coordinates ---------------------------------------------
    def blend(
        self, coverage: np.ndarray, top: int, left: int, color: np.ndarray, alpha: float
    ) -> None:
        """Blend `color` with opacity `alpha * coverage` into the canvas at (top, left).

        Args:
            coverage: (h, w) bool or float in [0, 1]; parts outside the canvas are ignored.
        """
        h, w = coverage.shape
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + h, self.out_height), min(left + w, self.out_width)
        if y0 >= y1 or x0 >= x1 or alpha <= 0:
            return
        cov = coverage[y0 - top : y1 - top, x0 - left : x1 - left]
        weight = cov.astype(np.float32) * np.float32(alpha)  # (h, w)
        region = self._canvas[y0:y1, x0:x1]
        rgb = np.asarray(color, dtype=np.float32)
        region += weight[..., None] * (rgb - region)  # weight (h, w) -> (h, w, 1)

    def stroke_rect(
        self,
        box: Sequence[float],
        width: int,
        color: np.ndarray,
        alpha: float,
        dashed: bool = False,
    ) -> None:
        """Outline the box (x0, y0, x1, y1) with a `width`-pixel line centred on its edges."""
        x0, y0, x1, y1 = (float(v) for v in box)
        half = width / 2.0
        l, t = _round(x0 - half), _round(y0 - half)
        r, b = max(_round(x1 + half), l + 1), max(_round(y1 + half), t + 1)
        cov = np.ones((b - t, r - l), dtype=bool)
        cov[width:-width, width:-width] = False  # hollow out the inside
        if dashed:
            dash = max(3 * width, 4)
            ys, xs = np.arange(b - t)[:, None], np.arange(r - l)[None, :]
            on_x, on_y = (xs // dash) % 2 == 0, (ys // dash) % 2 == 0
            edge_x = (ys < width) | (ys >= b - t - width)  # top and bottom strips
            cov &= np.where(edge_x, on_x, on_y)
        self.blend(cov, t, l, color, alpha)

    def draw_shapes(
        self, points: np.ndarray, width: int, draw: Any, color: np.ndarray, alpha: float
    ):
        """Rasterise a Pillow shape over the bounding box of `points` ((K, 2) xy) and blend it.

        `draw(d: ImageDraw, pts: list[tuple[float, float]])` draws with fill 255 at the shifted
        points (pixel i is Pillow's coordinate i, so callers pass pixel-edge coordinates - 0.5).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)  # (K*2,) or (K, 2) -> (K, 2)
        if len(pts) == 0 or not np.isfinite(pts).all():
            return
        pad = width + 2
        l = max(int(np.floor(pts[:, 0].min())) - pad, 0)
        t = max(int(np.floor(pts[:, 1].min())) - pad, 0)
        r = min(int(np.ceil(pts[:, 0].max())) + pad + 1, self.out_width)
        b = min(int(np.ceil(pts[:, 1].max())) + pad + 1, self.out_height)
        if r <= l or b <= t:
            return
        layer = Image.new("L", (r - l, b - t), 0)
        draw(ImageDraw.Draw(layer), [(float(x) - l, float(y) - t) for x, y in pts])
        self.blend(np.asarray(layer) > 127, t, l, color, alpha)

    def upsample_mask(self, mask: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        """Nearest-neighbour upsample an (H, W) bool mask, over its bounding box only.

        Returns:
            (top, left, crop) with crop the (h, w) bool mask at output resolution, or None when
            the mask is empty.
        """
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            return None
        top = int(np.searchsorted(self._src_rows, rows[0], side="left"))
        bottom = int(np.searchsorted(self._src_rows, rows[-1], side="right"))
        left = int(np.searchsorted(self._src_cols, cols[0], side="left"))
        right = int(np.searchsorted(self._src_cols, cols[-1], side="right"))
        crop = mask[np.ix_(self._src_rows[top:bottom], self._src_cols[left:right])]
        return top, left, crop

    def draw_label(
        self,
        text: str,
        x: float,
        y: float,
        *,
        size_px: float,
        color: np.ndarray,
        h_align: str = "left",
        v_align: str = "top",
        bg_color: np.ndarray = _BLACK,
        bg_alpha: float = 0.8,
        rotation: float = 0.0,
    ) -> tuple[int, int, int, int]:
        """Draw `text` on a translucent box anchored at (x, y), kept inside the canvas.

        Args:
            h_align: "left", "center" or "right": which side of the label sits at x.
            v_align: "top", "center" or "bottom": which side of the label sits at y.
            rotation: degrees counter-clockwise.

        Returns:
            The label's box (x0, y0, x1, y1) in output pixels.
        """
        glyphs, box = _label_layers(text, size_px, rotation)
        h, w = glyphs.shape
        offsets = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}
        if h_align not in ("left", "center", "right") or v_align not in ("top", "center", "bottom"):
            raise ValueError(f"bad text alignment {h_align!r}/{v_align!r}")
        left = _round(x - offsets[h_align] * w)
        top = _round(y - offsets[v_align] * h)
        left = min(max(left, 0), max(self.out_width - w, 0))
        top = min(max(top, 0), max(self.out_height - h, 0))
        if bg_alpha > 0:
            self.blend(box, top, left, bg_color, bg_alpha)
        self.blend(glyphs, top, left, color, 1.0)
        return left, top, left + w, top + h

    def label_size(self, text: str, size_px: float, rotation: float = 0.0) -> tuple[int, int]:
        """(width, height) in output pixels of the label `draw_label` would draw."""
        h, w = _label_layers(text, size_px, rotation)[0].shape
        return w, h

    def grey_out(self, keep: np.ndarray | None) -> None:
        """Turn the canvas grey (channel mean) outside `keep`, an (H, W) bool mask or None (all).

        Starts again from the input image, as Detectron2's IMAGE_BW mode does.
        """
        self.reset_image(self.img)
        grey = self._canvas.mean(axis=2, keepdims=True)  # (h, w, 1)
        if keep is None:
            self._canvas[:] = grey
            return
        keep_out = np.asarray(keep, dtype=bool)[np.ix_(self._src_rows, self._src_cols)]
        self._canvas[:] = np.where(keep_out[..., None], self._canvas, grey)


def _round(v: float) -> int:
    """Round half up (Python's round() goes to even, which makes 1-pixel lines jump)."""
    return int(math.floor(v + 0.5))


def _label_layers(text: str, size_px: float, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """(glyph coverage, background coverage) of a label, both (h, w) float32 in [0, 1]."""
    glyphs = render_text(text, size_px)
    pad = max(1, int(round(0.15 * size_px)))
    glyphs = np.pad(glyphs, pad)  # (h, w) -> (h + 2 pad, w + 2 pad)
    box = np.ones_like(glyphs)
    if rotation:
        glyphs, box = _rotate(glyphs, rotation), _rotate(box, rotation)
    return glyphs, box


def _rotate(coverage: np.ndarray, degrees: float) -> np.ndarray:
    img = Image.fromarray((coverage * 255).astype(np.uint8))
    rotated = img.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True)
    return np.asarray(rotated, dtype=np.float32) / 255.0

"""Text rasterisation with Pillow's bundled font: a coverage map per label, no font files needed.

Pillow >= 10.1 ships a scalable FreeType font (`ImageFont.load_default(size=...)`); older
Pillow (9.1 - 10.0), or a Pillow built without FreeType, only has an 11-pixel bitmap font, which
is rendered at its own size and then resampled to the size asked for.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["font_is_scalable", "render_text"]

# A reference string for the vertical extent of a line, so that labels with and without
# ascenders/descenders get the same height and line up.
_EXTENT_REFERENCE = "Ag|jy"


@functools.lru_cache(maxsize=64)
def _load_font(size_px: int) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, bool]:
    """The default font at `size_px` and whether it really has that size (FreeType)."""
    try:
        font = ImageFont.load_default(size=size_px)  # type: ignore[call-arg]
    except TypeError:  # Pillow < 10.1: no size argument
        font = ImageFont.load_default()
    scalable = isinstance(font, ImageFont.FreeTypeFont)
    return font, scalable


def font_is_scalable() -> bool:
    """Whether this Pillow renders text natively at any size (else: resampled bitmap font)."""
    return _load_font(12)[1]


def _bbox(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> tuple[int, ...]:
    """(left, top, right, bottom) of `text` drawn at the origin."""
    try:
        return tuple(int(v) for v in font.getbbox(text))
    except AttributeError:  # Pillow 9.1's bitmap font has only getsize
        w, h = font.getsize(text)  # type: ignore[union-attr]
        return (0, 0, int(w), int(h))


@functools.lru_cache(maxsize=64)
def _reference_extent(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> tuple[int, ...]:
    return _bbox(font, _EXTENT_REFERENCE)


def _render_line(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> np.ndarray:
    """(h, w) float32 coverage in [0, 1] of one line of text."""
    left, top, right, bottom = _bbox(font, text) if text else (0, 0, 0, 0)
    _, ref_top, _, ref_bottom = _reference_extent(font)
    left = min(left, 0)
    top, bottom = min(top, ref_top), max(bottom, ref_bottom)
    width, height = max(right - left, 1), max(bottom - top, 1)
    canvas = Image.new("L", (width, height), 0)
    if text:
        ImageDraw.Draw(canvas).text((-left, -top), text, fill=255, font=font)
    return np.asarray(canvas, dtype=np.float32) / 255.0


@functools.lru_cache(maxsize=1024)
def _render_cached(text: str, size_px: int) -> np.ndarray:
    font, scalable = _load_font(size_px)
    lines = [_render_line(line, font) for line in text.split("\n")]
    width = max(line.shape[1] for line in lines)
    # Pad every line to the widest one, then stack them: (sum of h, max w).
    out = np.concatenate([np.pad(line, ((0, 0), (0, width - line.shape[1]))) for line in lines])
    if not scalable:
        native = _render_line(_EXTENT_REFERENCE, font).shape[0]
        factor = size_px / max(native, 1)
        if abs(factor - 1.0) > 0.05:
            img = Image.fromarray((out * 255).astype(np.uint8))
            new_size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
            out = (
                np.asarray(img.resize(new_size, Image.Resampling.BILINEAR), dtype=np.float32)
                / 255.0
            )
    out.setflags(write=False)  # shared by the cache
    return out


def render_text(text: str, size_px: float) -> np.ndarray:
    """Rasterise `text` (newlines start new lines) with glyphs about `size_px` pixels tall.

    Returns:
        (h, w) float32 coverage in [0, 1], read-only (cached); h is about `size_px` per line.
    """
    return _render_cached(str(text), max(4, int(round(size_px))))

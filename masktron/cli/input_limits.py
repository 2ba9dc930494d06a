"""Command-line guards on inputs: score values, image pixel limits, drawing sizes.

Shared by the commands that read user images (`predict`, and later video and ONNX predictions):

- `unit_interval`: an argparse `type=` for scores in [0, 1]; NaN and out-of-range values are
  usage errors (exit code 2) instead of silently giving no detections.
- `--max-pixels N`: images above N pixels are refused from their header, before decoding
  (default PIL's decompression-bomb limit, 178,956,970; 0 removes the limit).
- `--max-draw-size N`: drawings of larger images are downscaled so their long side is N
  (default 4096; 0 draws at full size). Results files stay in original-image pixels.
"""

from __future__ import annotations

import argparse
import math

from masktron.data.image_io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels

__all__ = [
    "DEFAULT_MAX_DRAW_SIZE",
    "add_limit_arguments",
    "apply_limit_arguments",
    "drawing_scale",
    "non_negative_int",
    "unit_interval",
]

DEFAULT_MAX_DRAW_SIZE = 4096


def unit_interval(text: str) -> float:
    """argparse type: a finite number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (underscores allowed: 200_000_000)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--max-pixels` and `--max-draw-size` to a command's parser."""
    parser.add_argument(
        "--max-pixels",
        type=non_negative_int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        metavar="N",
        help="refuse images of more than N pixels before decoding them (decompression-bomb "
        f"guard; default {DEFAULT_MAX_IMAGE_PIXELS:,}; 0: no limit)",
    )
    parser.add_argument(
        "--max-draw-size",
        type=non_negative_int,
        default=DEFAULT_MAX_DRAW_SIZE,
        metavar="N",
        help="downscale drawings so their long side is at most N pixels; results stay in "
        f"original pixels (default {DEFAULT_MAX_DRAW_SIZE}; 0: full size)",
    )


def apply_limit_arguments(args: argparse.Namespace) -> None:
    """Apply `--max-pixels` to image reading (process-wide)."""
    set_max_image_pixels(args.max_pixels)


def drawing_scale(height: int, width: int, max_side: int) -> float:
    """The `Visualizer` scale that makes the long side at most `max_side` (0: 1.0)."""
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return 1.0
    return max_side / longest

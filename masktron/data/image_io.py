"""Reading images the way Detectron2's `read_image` does, with clear errors for bad files.

- EXIF orientation is applied (a photo taken in portrait comes out upright), as Detectron2 does.
- `format` is a PIL mode ("RGB", "L", ...) or "BGR" (RGB with channels reversed) or
  "YUV-BT.601"; greyscale, palette, CMYK and RGBA images are converted by PIL (alpha dropped).
- High bit-depth greyscale images (16-bit PNG/TIFF: PIL modes "I;16*", "I", "F"), which PIL
  cannot convert faithfully (it clips at 255), are scaled linearly to 8 bits by their own
  maximum value: `round(x * 255 / max(x))`, negatives clipped to 0. Detectron2 has no rule for
  them (its conversion saturates); this one keeps the image's contrast. `format=None` returns
  the raw array instead.
- Missing files raise `FileNotFoundError`; files that are not images, or are truncated or
  corrupt, raise `ImageReadError` (an `OSError`), each naming the file.
- Images of more than `max_image_pixels()` pixels (default 178,956,970, PIL's decompression-bomb
  limit: a 20000 x 20000 PNG can be a few KB on disk and 1.2 GB decoded) raise
  `ImageTooLargeError` from the header alone, before decoding; `set_max_image_pixels(n)` (the
  CLI's `--max-pixels`) raises or removes the limit.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

__all__ = [
    "ImageReadError",
    "ImageTooLargeError",
    "convert_PIL_to_numpy",
    "convert_image_to_rgb",
    "get_image_size",
    "max_image_pixels",
    "read_image",
    "set_max_image_pixels",
]

# https://en.wikipedia.org/wiki/YUV#SDTV_with_BT.601
_M_RGB2YUV = [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
_M_YUV2RGB = [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_warned_high_depth = False


class ImageReadError(OSError):
    """An image file that exists but cannot be decoded (not an image, truncated, corrupt)."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than `max_image_pixels()` (refused before decoding)."""


# PIL refuses images above twice its MAX_IMAGE_PIXELS as decompression bombs; so do we by default.
DEFAULT_MAX_IMAGE_PIXELS = 2 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)
_max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


def max_image_pixels() -> int | None:
    """The largest image (width x height) that `read_image` decodes; None: no limit."""
    return _max_pixels


def set_max_image_pixels(limit: int | None) -> None:
    """Raise or lower the pixel limit of `read_image` (None or 0: no limit), process-wide.

    PIL's own decompression-bomb check is moved to match, since it would refuse first.
    """
    global _max_pixels
    _max_pixels = int(limit) if limit else None
    Image.MAX_IMAGE_PIXELS = None if _max_pixels is None else max(_max_pixels // 2, 1)


def _too_large(path: str, width: int, height: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"{path}: {width} x {height} = {width * height:,} pixels, more than the limit of "
        f"{_max_pixels:,} (a guard against decompression bombs); if you trust it, raise the limit "
        "(--max-pixels N of masktron predict and sam, or "
        "masktron.data.image_io.set_max_image_pixels)"
    )


def _open(file_name: str | os.PathLike) -> Image.Image:
    path = os.fspath(file_name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected an image file, got a directory: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check below
            image = Image.open(path)
    except Image.DecompressionBombError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as header:  # the header only, to name the size
                    width, height = header.size
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        raise _too_large(path, width, height) from None
    except UnidentifiedImageError as e:
        raise ImageReadError(f"{path}: not an image file that PIL can read ({e})") from e
    except OSError as e:
        raise ImageReadError(f"{path}: cannot open image ({e})") from e
    width, height = image.size
    if _max_pixels is not None and width * height > _max_pixels:
        image.close()
        raise _too_large(path, width, height)
    return image


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF Orientation tag; images with broken EXIF are left as they are."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF blocks: ignore them, as Detectron2 does
        return image


def get_image_size(file_name: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file as `read_image` returns it (EXIF orientation applied).

    Reads only the header, not the pixels.
    """
    with _open(file_name) as image:
        w, h = image.size
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:
            orientation = 1
    # Orientations 5-8 rotate by 90 degrees: width and height swap.
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _to_8bit(image: Image.Image) -> Image.Image:
    """A high bit-depth greyscale image scaled by its maximum to an 8-bit "L" image."""
    global _warned_high_depth
    if not _warned_high_depth:
        logger.warning(
            "scaling a %s-mode (high bit-depth) image to 8 bits by its maximum value", image.mode
        )
        _warned_high_depth = True
    arr = np.asarray(image).astype(np.float64)
    arr = np.clip(np.nan_to_num(arr), 0, None)
    peak = arr.max() if arr.size else 0.0
    scaled = np.rint(arr * (255.0 / peak)) if peak > 0 else np.zeros_like(arr)
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8 -> mode "L"


def convert_PIL_to_numpy(image: Image.Image, format: str | None) -> np.ndarray:  # noqa: N802
    """PIL image -> (H, W, C) array in `format` ((H, W, 1) for "L"); None keeps PIL's mode.

    Returns uint8 for PIL modes and "BGR"; float64 for "YUV-BT.601" (Y in [0, 1]).
    """
    if format is not None:
        if image.mode in _HIGH_DEPTH_MODES:
            image = _to_8bit(image)
        conversion = "RGB" if format in ("BGR", "YUV-BT.601") else format
        try:
            image = image.convert(conversion)
        except ValueError as e:
            raise ValueError(f"cannot convert an image of mode {image.mode} to {format!r}") from e
    array = np.asarray(image)
    if format == "L":
        array = array[:, :, None]  # (H, W) -> (H, W, 1)
    elif format == "BGR":
        array = array[:, :, ::-1]
    elif format == "YUV-BT.601":
        array = np.dot(array / 255.0, np.array(_M_RGB2YUV).T)
    return array


def convert_image_to_rgb(image: Any, format: str) -> np.ndarray:
    """An (H, W, C) image in `format` (array or tensor) -> (H, W, 3) RGB in 0-255."""
    if hasattr(image, "cpu"):
        image = image.cpu().numpy()
    image = np.asarray(image)
    if format == "BGR":
        return image[:, :, [2, 1, 0]]
    if format == "YUV-BT.601":
        return np.dot(image, np.array(_M_YUV2RGB).T) * 255.0
    if format == "L":
        return np.repeat(image[:, :, :1].astype(np.uint8), 3, axis=2)
    if format == "RGB":
        return image
    return np.asarray(Image.fromarray(image.astype(np.uint8)).convert("RGB"))


def _array_to_format(array: np.ndarray, format: str | None) -> np.ndarray:
    """An in-memory array is taken to be in `format` already; only its layout is normalised."""
    if array.ndim not in (2, 3):
        raise ValueError(f"an image array must be (H, W) or (H, W, C), got shape {array.shape}")
    if format is None:
        return array
    if array.ndim == 2:
        array = array[:, :, None]  # (H, W) -> (H, W, 1)
    channels = array.shape[2]
    if format == "L":
        if channels != 1:
            raise ValueError(f"format 'L' needs a 1-channel array, got shape {array.shape}")
        return array
    if channels == 1:
        return np.repeat(array, 3, axis=2)  # grey -> 3 equal channels
    if channels == 4 and format in ("RGB", "BGR"):
        return array[:, :, :3]  # drop alpha
    return array


def read_image(file_name: Any, format: str | None = None) -> np.ndarray:
    """Read an image file into an (H, W, C) array in `format` (see the module docstring).

    Args:
        file_name: a path; or a PIL image or numpy array already in memory (a numpy array is
            assumed to be in `format` already: only greyscale/alpha layout is adapted).
        format: "BGR", "RGB", "L", another PIL mode, "YUV-BT.601", or None (PIL's own mode).

    Returns:
        uint8 (H, W, C) array ((H, W, 1) for "L"); with format None, PIL's array as is.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: the file is not an image, or is truncated or corrupt.
    """
    if isinstance(file_name, np.ndarray):
        return _array_to_format(file_name, format)
    if isinstance(file_name, Image.Image):
        return convert_PIL_to_numpy(_apply_exif_orientation(file_name), format)
    if not isinstance(file_name, (str, os.PathLike)):
        raise TypeError(f"read_image needs a path, a PIL image or an array, got {file_name!r}")
    path = os.fspath(file_name)
    with _open(path) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageReadError(
                f"{path}: cannot decode the image, truncated or corrupt ({e})"
            ) from e
        image = _apply_exif_orientation(image)
        return convert_PIL_to_numpy(image, format)

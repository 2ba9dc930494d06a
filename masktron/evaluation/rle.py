"""COCO run-length encoding (RLE): checks before evaluation, conversions, encoding.

pycocotools' C code trusts its input: a compressed `counts` string cut short in the middle of a
run makes it read past the string, and runs that add up to more than the image make it write
past its buffer. Results files come from users, so every compressed RLE is checked here first:
the characters and the last run here, the runs themselves by hotcoco's decoder (which refuses
negative runs and runs past height*width pixels with a `ValueError` instead of crashing).

The compressed format (pycocotools `maskApi.c`, `rleToString`): the run lengths of a column-major
mask, each written as 5-bit groups in characters `48 + group`, bit 0x20 set on every group of a
run but its last.
"""

from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from masktron.evaluation.engine import hotcoco

_FIRST_CHAR, _LAST_CHAR = 48, 48 + 63  # '0' .. 'o'
_MORE = 0x20  # "another group of this run follows"


def check_compressed_rles(
    rles: Sequence[Mapping[str, Any]],
    sizes: Sequence[tuple[int, int]] | None = None,
    *,
    counts: Sequence[str | bytes] | None = None,
) -> np.ndarray:
    """Which compressed RLEs are malformed.

    Args:
        rles: N dicts with `size` [h, w] (the image's, checked by the caller) and `counts`
            (bytes or str, compressed).
        sizes: N (height, width) of the images the masks belong to (each RLE's `size`, as
            the caller has checked).
        counts: the N RLEs' `counts`, when the caller has them already.

    Returns:
        (N,) bool, True where the RLE is unusable: a character outside the format's alphabet, a
        run cut short by the end of the string, a negative run, or runs covering more than
        height*width pixels. Runs that stop short of height*width pixels leave the rest of the
        mask empty, as both engines read them. Without hotcoco, the last two are not checked.
    """
    n = len(rles)
    strings: Sequence[Any] = [r["counts"] for r in rles] if counts is None else counts
    text = "".join(strings) if set(map(type, strings)) <= {str} else None
    if text is not None and text.isascii():
        joined = text.encode("ascii")
    else:  # bytes, or characters beyond ASCII
        strings = [c.encode("utf-8", "surrogatepass") if isinstance(c, str) else c for c in strings]
        joined = b"".join(strings)
    bad = np.zeros(n, dtype=bool)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    if lengths.sum():
        chars = np.frombuffer(joined, dtype=np.uint8)
        ends = np.cumsum(lengths)  # (N,) one past each string's last character
        if chars.min() < _FIRST_CHAR or chars.max() > _LAST_CHAR:  # say where
            outside = np.flatnonzero((chars < _FIRST_CHAR) | (chars > _LAST_CHAR))
            bad[np.searchsorted(ends, outside, side="right")] = True
        nonempty = np.flatnonzero(lengths)
        more = ((chars[ends[nonempty] - 1].astype(np.int64) - _FIRST_CHAR) & _MORE) != 0
        bad[nonempty[more]] = True  # the last run is cut short
    if hotcoco is None:
        return bad
    good = np.flatnonzero(~bad)
    candidates = rles if len(good) == n else [rles[int(i)] for i in good]
    try:
        hotcoco.mask.area(candidates)  # reads `counts` as str or bytes, `size` as given
    except ValueError:  # only now one by one, to say which
        for i in good:
            try:
                hotcoco.mask.area([rles[int(i)]])
            except ValueError:
                bad[i] = True
    return bad


def _check_uncompressed(counts: list, height: int, width: int) -> None:
    try:  # Python ints (what JSON gives) at C speed; floats and strings are refused here too
        runs = np.frombuffer(array.array("q", counts), dtype=np.int64)
    except (TypeError, OverflowError):
        runs = np.asarray(counts)
    if runs.ndim != 1 or runs.dtype.kind not in "iu" or (runs < 0).any():
        raise ValueError("uncompressed RLE counts must be non-negative integers")
    area = height * width
    if runs.size and runs.max() > area:  # (and no overflow in the sum below)
        raise ValueError(f"RLE counts sum to more than height*width {area}")
    if runs.sum() != area:
        raise ValueError(f"RLE counts sum to {runs.sum()}, not height*width {area}")


def uncompressed_rles_ok(counts: Sequence[list], areas: Sequence[int]) -> bool:
    """Whether each list of uncompressed RLE `counts` is non-negative Python ints summing to
    its mask's height*width: all at once (False: check them one by one with `check_rle_size`
    to say which and why)."""
    if not counts:
        return True
    try:  # one array per list, made at C speed; floats and strings are refused
        parts = [np.frombuffer(array.array("q", c), dtype=np.int64) for c in counts]
    except (TypeError, OverflowError):
        return False
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    if not lengths.all():
        return False
    runs = np.concatenate(parts)
    target = np.asarray(areas, dtype=np.int64)
    if runs.min() < 0 or runs.max() > target.max():  # (and no overflow in the sums)
        return False
    return bool((np.add.reduceat(runs, np.cumsum(lengths) - lengths) == target).all())


def _finite_numbers(values: list) -> bool:
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values
    )


def check_rle_size(
    segmentation: Mapping, height: int, width: int, *, uncompressed_runs: bool = True
) -> None:
    """An RLE's `size` must be its image's; uncompressed `counts` must cover it exactly (not
    checked here with `uncompressed_runs=False`: the caller checks many at once)."""
    size = segmentation["size"]
    size = list(size) if isinstance(size, (list, tuple)) else size
    if size != [height, width]:
        raise ValueError(f"RLE size {size} is not the image's [height, width] {[height, width]}")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if uncompressed_runs:
            _check_uncompressed(counts, height, width)
    elif isinstance(counts, str) and not counts.isascii():
        raise ValueError("RLE counts have non-ASCII characters")
    elif not isinstance(counts, (str, bytes)):
        raise ValueError(f"RLE counts must be a string or a list, got {type(counts).__name__}")


def to_compressed_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) as compressed RLE.

    Returns:
        {"size": [height, width], "counts": str}: what results files and pycocotools use.

    Raises:
        ValueError: the segmentation has none of COCO's three forms, or a size that is not
            the image's.
    """
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if len(polygons) != len(segmentation) or any(len(p) % 2 for p in polygons):
            raise ValueError("polygons must be lists of x, y pairs with at least 3 points")
        if not polygons:
            raise ValueError("no polygon with 3 points or more")
        if not all(_finite_numbers(p) for p in polygons):
            raise ValueError("polygon coordinates must be finite numbers")
        rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and {"size", "counts"} <= segmentation.keys():
        check_rle_size(segmentation, height, width)
        if isinstance(segmentation["counts"], list):
            rle = mask_util.frPyObjects(segmentation, height, width)
        else:
            rle = {"counts": segmentation["counts"]}
    else:
        raise ValueError("segmentation must be polygons (a list) or RLE (a dict with size, counts)")
    counts = rle["counts"]
    return {
        "size": [height, width],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode binary masks as compressed RLE with `counts` as str (JSON-ready).

    Args:
        masks: (N, H, W) bool or uint8.

    Returns:
        N dicts {"size": [H, W], "counts": str}.
    """
    if len(masks) == 0:
        return []
    # (N, H, W) -> (H, W, N), column-major as pycocotools requires
    stack = np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8))
    rles = mask_util.encode(stack)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles

"""COCO run-length encoding (RLE) checks, vectorised over many masks at once.

pycocotools' C code trusts its input: a malformed compressed `counts` string makes it loop for
ever or write past its buffer. Results files come from users, so every RLE is checked here
before any of it reaches pycocotools or faster-coco-eval.

The compressed format (pycocotools `maskApi.c`, `rleToString`): the run lengths of a column-major
mask, starting with a run of zeros; each run is written as 5-bit groups, least significant
first, in characters `48 + group`, with bit 0x20 set on every group but the last and bit 0x10 of
the last group the sign; from the fourth run on, a run is stored as its difference to the run two
places before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

_FIRST_CHAR, _LAST_CHAR = 48, 48 + 63  # '0' .. 'o'
_MAX_GROUPS = 12  # 60 bits: more than any real image needs, and no int64 overflow


def decode_counts(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many compressed RLE `counts` strings into run lengths, in one numpy pass.

    Args:
        strings: N compressed `counts` byte strings.

    Returns:
        runs: (R,) int64, the run lengths of all strings one after another.
        owner: (R,) int64, the index of the string each run belongs to.
        bad: (N,) bool, True for strings that are not valid compressed RLE (a character out
            of range, a run cut short, a group count that would overflow); their runs are
            meaningless.
    """
    n = len(strings)
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=n)
    bad = np.zeros(n, dtype=bool)
    if lengths.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), bad
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64)
    char_owner = np.repeat(np.arange(n), lengths)  # (C,)
    out_of_range = (chars < _FIRST_CHAR) | (chars > _LAST_CHAR)
    bad[char_owner[out_of_range]] = True
    group = np.where(out_of_range, 0, chars - _FIRST_CHAR)
    more = (group & 0x20) != 0  # another 5-bit group of the same run follows
    string_end = np.cumsum(lengths)[lengths > 0] - 1  # index of each non-empty string's last char
    bad[char_owner[string_end[more[string_end]]]] = True  # a run cut short by the string's end
    run_end = ~more
    run_end[string_end] = True  # never let a run continue into the next string
    run_of_char = np.cumsum(run_end) - run_end  # (C,) index of the run each character belongs to
    run_start = np.flatnonzero(np.concatenate(([True], run_end[:-1])))  # (R,)
    position = np.arange(len(chars)) - run_start[run_of_char]  # group index within its run
    too_long = position >= _MAX_GROUPS
    bad[char_owner[too_long]] = True
    position = np.minimum(position, _MAX_GROUPS - 1)
    runs = np.add.reduceat((group & 0x1F) << (5 * position), run_start)  # (R,)
    last = np.flatnonzero(run_end)  # (R,) last character of every run
    negative = (group[last] & 0x10) != 0
    runs = runs - (negative.astype(np.int64) << (5 * (position[last] + 1)))
    owner = char_owner[last]
    # Undo the differences: from the fourth run on, a run adds the run two places before it, so
    # runs 1, 3, 5.. and 2, 4, 6.. of each string are two running sums (run 0 stands alone).
    first_run = np.searchsorted(owner, np.arange(n))  # (N,) index of each string's first run
    index_in_string = np.arange(len(runs)) - first_run[owner]
    decoded = runs.copy()
    for parity in (0, 1):
        chain = (index_in_string >= 1) & ((index_in_string & 1) == parity)
        totals = np.cumsum(np.where(chain, runs, 0))
        before = np.where(first_run > 0, totals[np.maximum(first_run - 1, 0)], 0)  # (N,)
        decoded[chain] = totals[chain] - before[owner[chain]]
    return decoded, owner, bad


def check_compressed_rles(
    rles: Sequence[Mapping[str, Any]], sizes: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Which compressed RLEs are malformed or do not cover their image exactly.

    Args:
        rles: N dicts with `size` [h, w] and `counts` (bytes or str, compressed).
        sizes: N (height, width) of the images the masks belong to.

    Returns:
        (N,) bool, True where the RLE is unusable.
    """
    n = len(rles)
    strings = [
        r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"] for r in rles
    ]
    runs, owner, bad = decode_counts(strings)
    pixels = np.fromiter((h * w for h, w in sizes), dtype=np.int64, count=n)
    total = np.bincount(owner, weights=runs.astype(np.float64), minlength=n)
    negative = np.bincount(owner, weights=(runs < 0).astype(np.float64), minlength=n) > 0
    return bad | negative | (total != pixels)


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
        rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and {"size", "counts"} <= segmentation.keys():
        size = list(segmentation["size"])
        if size != [height, width]:
            raise ValueError(
                f"RLE size {size} is not the image's [height, width] {[height, width]}"
            )
        counts = segmentation["counts"]
        if isinstance(counts, list):
            runs = np.asarray(counts)
            if runs.ndim != 1 or runs.dtype.kind not in "iu" or (runs < 0).any():
                raise ValueError("uncompressed RLE counts must be non-negative integers")
            if runs.sum() != height * width:
                raise ValueError(
                    f"RLE counts sum to {runs.sum()}, not height*width {height * width}"
                )
            rle = mask_util.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = {"size": size, "counts": counts}
        else:
            raise ValueError(f"RLE counts must be a string or a list, got {type(counts).__name__}")
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

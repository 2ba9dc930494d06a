"""A fixed palette of distinct colours and the colour helpers built on it.

The palette is generated, not listed: candidates on an HSV grid (no greys, nothing too dark) are
picked greedily, each one the candidate farthest in RGB from those already picked (farthest-point
sampling). Every prefix of the palette is therefore well spread, so the first few classes or
masks of an image get clearly different colours.

Colours are float arrays of (R, G, B); `maximum` sets their range (255 for 8-bit, 1 for unit).
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = [
    "PALETTE_SIZE",
    "colormap",
    "id_color",
    "jitter_color",
    "random_color",
    "random_colors",
]

PALETTE_SIZE = 64


def _make_palette(size: int) -> np.ndarray:
    """(size, 3) float64 RGB in [0, 1], by farthest-point sampling of an HSV grid."""
    candidates = [
        colorsys.hsv_to_rgb(h / 36.0, s, v)
        for h in range(36)
        for s in (0.45, 0.7, 0.95)
        for v in (0.6, 0.8, 1.0)
    ]
    cand = np.asarray(candidates, dtype=np.float64)  # (C, 3)
    # Start from a saturated blue-green, a colour that reads well on most photos.
    first = int(np.argmin(np.abs(cand - np.array([0.0, 0.7, 1.0])).sum(axis=1)))
    picked = [first]
    dist = np.linalg.norm(cand - cand[first], axis=1)  # (C,) distance to the nearest pick
    for _ in range(size - 1):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(cand - cand[nxt], axis=1))
    return cand[picked]


_PALETTE = _make_palette(PALETTE_SIZE)


def colormap(rgb: bool = True, maximum: float = 255) -> np.ndarray:
    """The palette as a (PALETTE_SIZE, 3) float32 array.

    Args:
        rgb: channel order RGB, else BGR (Detectron2's `colormap` defaults to BGR; ours to RGB).
        maximum: the value of a full channel (255 or 1).
    """
    out = (_PALETTE * maximum).astype(np.float32)
    return out if rgb else out[:, ::-1].copy()


def random_color(rgb: bool = True, maximum: float = 255) -> np.ndarray:
    """One palette colour picked with numpy's global RNG, as a (3,) float32 array."""
    idx = np.random.randint(0, PALETTE_SIZE)
    out = (_PALETTE[idx] * maximum).astype(np.float32)
    return out if rgb else out[::-1].copy()


def random_colors(n: int, rgb: bool = True, maximum: float = 255) -> list[np.ndarray]:
    """`n` different palette colours (repeating only once the palette is exhausted)."""
    order = np.random.permutation(PALETTE_SIZE)
    idx = [order[i % PALETTE_SIZE] for i in range(n)]
    cmap = colormap(rgb=rgb, maximum=maximum)
    return [cmap[i].copy() for i in idx]


def jitter_color(color: np.ndarray, seed: int, amount: float = 0.25) -> np.ndarray:
    """Move a colour by a fixed distance in a direction drawn from `seed`.

    Args:
        color: (3,) RGB in [0, 255].
        seed: picks the direction; the same seed always gives the same colour.
        amount: the length of the move as a fraction of the full 0-255 range.

    Returns:
        (3,) float32 RGB in [0, 255].
    """
    rng = np.random.default_rng(seed)
    direction = rng.uniform(-1.0, 1.0, size=3)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    return np.clip(np.asarray(color, np.float32) + direction * amount * 255.0, 0, 255).astype(
        np.float32
    )


def id_color(index: int, jitter: bool = False) -> np.ndarray:
    """A deterministic colour for an integer (a class id or a mask index).

    The first `PALETTE_SIZE` indices map to palette entries; later ones reuse the palette and are
    jittered so that indices `i` and `i + PALETTE_SIZE` still differ. With `jitter=True` every
    index is jittered (seeded by the index), as Detectron2's IMAGE mode jitters its colours.

    Returns:
        (3,) float32 RGB in [0, 255].
    """
    index = int(index)
    base = (_PALETTE[index % PALETTE_SIZE] * 255.0).astype(np.float32)
    cycle = index // PALETTE_SIZE
    if jitter or cycle > 0:
        return jitter_color(base, seed=index, amount=0.15 if cycle == 0 else 0.25)
    return base

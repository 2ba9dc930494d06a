from __future__ import annotations

import numpy as np

from masktron.visualization.colormap import (
    PALETTE_SIZE,
    colormap,
    id_color,
    jitter_color,
    random_color,
    random_colors,
)


def _min_distance(colors: np.ndarray) -> float:
    d = np.linalg.norm(colors[:, None] - colors[None], axis=2)  # (P, P)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_palette_is_distinct_and_in_range():
    cmap = colormap()
    assert cmap.shape == (PALETTE_SIZE, 3) and cmap.dtype == np.float32
    assert cmap.min() >= 0 and cmap.max() <= 255
    # Farthest-point sampling: early prefixes are the most spread out.
    assert _min_distance(cmap[:8]) > 140
    assert _min_distance(cmap[:16]) > 100
    assert _min_distance(cmap) > 45
    # No greys and nothing near black (labels sit on a dark background).
    assert (cmap.max(axis=1) - cmap.min(axis=1)).min() > 50
    assert cmap.max(axis=1).min() >= 0.6 * 255 - 1e-3


def test_colormap_order_and_maximum():
    rgb = colormap(rgb=True, maximum=1)
    bgr = colormap(rgb=False, maximum=255)
    np.testing.assert_allclose(bgr[:, ::-1] / 255.0, rgb, atol=1e-6)
    assert rgb.max() <= 1.0


def test_random_color_comes_from_the_palette():
    np.random.seed(3)
    c = random_color(rgb=True, maximum=255)
    assert c.shape == (3,)
    assert np.any(np.all(np.isclose(colormap(), c), axis=1))
    np.random.seed(3)
    np.testing.assert_array_equal(random_color(rgb=False, maximum=255), c[::-1])
    assert random_color(maximum=1).max() <= 1.0


def test_random_colors_are_all_different_until_the_palette_runs_out():
    colors = np.stack(random_colors(PALETTE_SIZE))
    assert len(np.unique(colors, axis=0)) == PALETTE_SIZE
    assert len(random_colors(PALETTE_SIZE + 5)) == PALETTE_SIZE + 5


def test_id_color_is_deterministic_and_separates_palette_cycles():
    np.testing.assert_array_equal(id_color(7), id_color(7))
    np.testing.assert_array_equal(id_color(7), colormap()[7])
    assert not np.allclose(id_color(3), id_color(3 + PALETTE_SIZE))
    jittered = id_color(3, jitter=True)
    assert not np.allclose(jittered, id_color(3))
    np.testing.assert_array_equal(jittered, id_color(3, jitter=True))
    assert jittered.min() >= 0 and jittered.max() <= 255


def test_jitter_moves_by_the_requested_amount_unless_clipped():
    base = np.array([128.0, 128.0, 128.0], dtype=np.float32)
    moved = jitter_color(base, seed=5, amount=0.2)
    np.testing.assert_allclose(np.linalg.norm(moved - base), 0.2 * 255, rtol=1e-4)
    np.testing.assert_array_equal(moved, jitter_color(base, seed=5, amount=0.2))

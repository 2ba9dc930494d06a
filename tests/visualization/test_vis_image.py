from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageFont

from masktron.visualization import text as text_module
from masktron.visualization.text import render_text
from masktron.visualization.vis_image import (
    VisImage,
    change_brightness,
    readable_text_color,
    to_rgb,
)


@pytest.mark.parametrize(
    "color, expected",
    [
        ("g", (0, 127.5, 0)),
        ("red", (255, 0, 0)),
        ("#0000ff", (0, 0, 255)),
        ((1.0, 0.0, 0.0), (255, 0, 0)),  # unit colours, as matplotlib takes them
        ((0, 0.5, 1), (0, 127.5, 255)),
        ((200, 10, 30), (200, 10, 30)),  # 0-255
        ([10, 20, 30, 0.5], (10, 20, 30)),  # alpha dropped
        (np.array([255, 255, 240]), (255, 255, 240)),
    ],
)
def test_to_rgb(color, expected):
    np.testing.assert_allclose(to_rgb(color), expected)


@pytest.mark.parametrize("bad", ["not-a-colour", (1, 2), (np.nan, 0, 0)])
def test_to_rgb_rejects_bad_colours(bad):
    with pytest.raises(ValueError, match="colour"):
        to_rgb(bad)


def test_brightness_and_readable_text():
    color = np.array([200.0, 40.0, 40.0], dtype=np.float32)
    darker, lighter = change_brightness(color, -0.7), change_brightness(color, 0.7)
    assert darker.sum() < color.sum() < lighter.sum()
    with pytest.raises(ValueError):
        change_brightness(color, 1.5)
    navy = readable_text_color(np.array([0.0, 0.0, 142.0]))
    assert navy @ np.array([0.299, 0.587, 0.114]) >= 140 - 1e-3
    assert navy[2] == navy.max()  # still blue


@pytest.mark.parametrize(
    "scale, shape", [(1.0, (40, 60, 3)), (0.5, (20, 30, 3)), (1.5, (60, 90, 3))]
)
def test_output_size_follows_scale(scale, shape):
    img = np.full((40, 60, 3), 77, dtype=np.uint8)
    vis = VisImage(img, scale=scale)
    out = vis.get_image()
    assert out.shape == shape and out.dtype == np.uint8
    assert (out == 77).all()
    out[:] = 0  # a copy: the canvas is untouched
    assert (vis.get_image() == 77).all()
    with pytest.raises(ValueError, match="scale"):
        VisImage(img, scale=0)


def test_save_is_atomic(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    vis = VisImage(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    path = tmp_path / "out.png"
    vis.save(path)
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), vis.get_image())
    assert sorted(os.listdir(tmp_path)) == ["out.png"]

    # A failure while replacing leaves the old file as it was and no temp file behind.
    before = path.read_bytes()
    vis.blend(np.ones((5, 5), bool), 0, 0, np.array([255.0, 0, 0]), 1.0)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        vis.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_save_rejects_unknown_extension(tmp_path):
    vis = VisImage(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="extension"):
        vis.save(tmp_path / "out.notanimage")
    assert os.listdir(tmp_path) == []


def test_blend_clips_at_the_border_and_mixes_by_alpha():
    vis = VisImage(np.zeros((10, 10, 3), np.uint8))
    vis.blend(np.ones((4, 4), bool), -2, 8, np.array([200.0, 100.0, 0.0]), 0.5)
    out = vis.get_image()
    np.testing.assert_array_equal(out[0, 8], [100, 50, 0])
    np.testing.assert_array_equal(out[1, 9], [100, 50, 0])
    assert out[2:].sum() == 0 and out[:, :8].sum() == 0


def test_stroke_rect_solid_and_dashed():
    vis = VisImage(np.zeros((40, 40, 3), np.uint8))
    vis.stroke_rect((10, 10, 30, 30), 2, np.array([255.0, 255, 255]), 1.0)
    out = vis.get_image()[..., 0] > 0
    assert out[9:11, 12:28].all() and out[12:28, 29:31].all()  # edges
    assert not out[12:28, 12:28].any() and not out[:8].any()  # inside and outside
    dashed = VisImage(np.zeros((40, 40, 3), np.uint8))
    dashed.stroke_rect((5, 5, 35, 35), 1, np.array([255.0, 255, 255]), 1.0, dashed=True)
    top = dashed.get_image()[5, 5:35, 0] > 0
    assert top.any() and not top.all()


def test_render_text_grows_with_size():
    small, large = render_text("person 98%", 10), render_text("person 98%", 30)
    assert small.max() > 0.9 and large.max() > 0.9
    assert large.shape[0] > 2 * small.shape[0] and large.shape[1] > 2 * small.shape[1]
    two_lines = render_text("a\nb", 20)
    assert two_lines.shape[0] > 1.8 * render_text("a", 20).shape[0]


@pytest.fixture()
def old_pillow_font(monkeypatch):
    """Pillow < 10.1: load_default() takes no size and gives the bitmap font."""
    original = ImageFont.load_default

    def load_default(*args, **kwargs):
        if args or kwargs:
            raise TypeError("load_default() takes no arguments")
        return (
            ImageFont.load_default_imagefont()
            if hasattr(ImageFont, "load_default_imagefont")
            else original()
        )

    caches = [text_module._load_font, text_module._render_cached, text_module._reference_extent]
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(ImageFont, "load_default", load_default)
    yield
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def test_bitmap_font_fallback_is_resampled_to_the_size(old_pillow_font):
    assert not text_module.font_is_scalable()
    small, large = render_text("cat 50%", 11), render_text("cat 50%", 33)
    assert small.max() > 0.5 and large.max() > 0.5
    assert 2.5 < large.shape[0] / small.shape[0] < 3.5


def test_draw_label_stays_inside_and_rotates():
    vis = VisImage(np.zeros((60, 80, 3), np.uint8))
    x0, y0, x1, y1 = vis.draw_label("label", 78, 58, size_px=12, color=np.array([255.0, 255, 255]))
    assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 60
    w, h = vis.label_size("label", 12)
    assert (x1 - x0, y1 - y0) == (w, h)
    rw, rh = vis.label_size("label", 12, rotation=90)
    assert (rw, rh) == (h, w)
    with pytest.raises(ValueError, match="alignment"):
        vis.draw_label("x", 0, 0, size_px=10, color=np.zeros(3), h_align="middle")

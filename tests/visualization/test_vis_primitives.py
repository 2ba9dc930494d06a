from __future__ import annotations

import numpy as np
import pytest
from _vis_helpers import box_mask, region_color

from masktron.visualization import Visualizer


def changed(out, img):
    return (out.get_image() != img).any(axis=2)


def test_draw_binary_mask_fill_outline_text_and_threshold(astronaut):
    h, w = astronaut.shape[:2]
    mask = box_mask(h, w, (100, 100, 300, 300)) | box_mask(h, w, (400, 400, 404, 404))
    vis = Visualizer(astronaut)
    out = vis.draw_binary_mask(mask, color="blue", edge_color=(1.0, 1.0, 1.0), area_threshold=20)
    img = out.get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.5, (120, 120, 180, 180)), (0, 0, 255), atol=3
    )
    assert (img[150, 100] == 255).all() and (img[99, 150] == astronaut[99, 150]).all()  # outline
    np.testing.assert_array_equal(img[400:404, 400:404], astronaut[400:404, 400:404])  # 16 px < 20
    labelled = Visualizer(astronaut).draw_binary_mask(mask, color="blue", text="road", alpha=0.5)
    diff = (labelled.get_image() != img).any(axis=2)
    assert diff[195:205, 180:220].mean() > 0.3  # the label at the piece's centre (200, 200)
    with pytest.raises(ValueError, match="shape"):
        Visualizer(astronaut).draw_binary_mask(mask[:10])


def test_draw_binary_mask_without_colour_uses_the_palette_in_turn(astronaut):
    h, w = astronaut.shape[:2]
    vis = Visualizer(astronaut)
    vis.draw_binary_mask(box_mask(h, w, (0, 0, 100, 100)))
    vis.draw_binary_mask(box_mask(h, w, (200, 0, 300, 100)))
    img = vis.output.get_image()
    a = region_color(img, astronaut, 0.5, (20, 20, 80, 80))
    b = region_color(img, astronaut, 0.5, (220, 20, 280, 80))
    assert np.abs(a - b).max() > 40


def test_draw_polygon_box_text_line_circle(astronaut):
    vis = Visualizer(astronaut)
    vis.draw_polygon(np.array([[50, 50], [150, 50], [100, 150]]), "red", alpha=0.5)
    img = vis.output.get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.5, (95, 70, 105, 80)), (255, 0, 0), atol=3
    )
    assert changed(vis.output, astronaut)[50, 60:140].all()  # the outline
    before = vis.output.get_image()
    vis.draw_box((200, 200, 300, 300), edge_color="g", line_style="--")
    top = (vis.output.get_image()[200, 200:300] != before[200, 200:300]).any(axis=1)
    assert top.any() and not top.all()  # dashed
    before = vis.output.get_image()
    vis.draw_text("hello", (400, 50), font_size=20)
    diff = (vis.output.get_image() != before).any(axis=2)
    ys, xs = np.nonzero(diff)
    assert abs(xs.mean() - 400) < 10 and ys.min() >= 49  # centred on x, hanging from y
    before = vis.output.get_image()
    vis.draw_line([20, 200], [400, 400], color="w", linewidth=3)
    assert (vis.output.get_image()[400, 30:190] == 255).all()
    vis.draw_circle((450, 450), color=(0, 0, 1.0), radius=5)
    assert tuple(vis.output.get_image()[450, 450]) == (0, 0, 255)


def test_overlay_instances_checks_lengths(astronaut):
    with pytest.raises(ValueError, match="length"):
        Visualizer(astronaut).overlay_instances(boxes=[[0, 0, 5, 5]], labels=["a", "b"])
    out = Visualizer(astronaut).overlay_instances(
        boxes=np.array([[10, 10, 100, 100]]), labels=["x"], assigned_colors=["yellow"]
    )
    assert changed(out, astronaut)[10:100, 10].all()

"""Visualizer.draw_soft_mask: colour blended with opacity alpha * mask value."""

import numpy as np

from masktron.utils.visualizer import Visualizer


def test_draw_soft_mask_blends_by_mask_value():
    image = np.zeros((20, 30, 3), np.uint8)
    soft = np.zeros((20, 30), np.float32)
    soft[:, 15:] = 1.0
    soft[:, 5:10] = 0.5
    out = Visualizer(image, scale=1.0).draw_soft_mask(soft, color=(1.0, 0.0, 0.0), alpha=0.5)
    img = out.get_image()
    assert img[10, 2].tolist() == [0, 0, 0]  # mask 0: untouched
    assert abs(int(img[10, 7, 0]) - 64) <= 1 and img[10, 7, 1] == 0  # 0.25 of full red
    assert abs(int(img[10, 20, 0]) - 128) <= 1  # 0.5 of full red
    labelled = Visualizer(image, scale=2.0).draw_soft_mask(soft, text="cat").get_image()
    assert labelled.shape == (40, 60, 3) and labelled.any()

"""ResizeLongestSide: sizes, prompt coordinates through the resize and back, image resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from masktron.models.sam import ResizeLongestSide


@pytest.mark.parametrize(
    ("size", "want"),
    [
        ((512, 512), (1024, 1024)),
        ((400, 600), (683, 1024)),
        ((1500, 20), (1024, 14)),
        ((3, 7), (439, 1024)),
    ],
)
def test_preprocess_shape_rounds_half_up(size, want):
    assert ResizeLongestSide.get_preprocess_shape(*size, 1024) == want


def test_coords_and_boxes_scale_per_axis_and_invert():
    t = ResizeLongestSide(1024)
    size = (400, 600)  # resized to (683, 1024)
    coords = np.array([[0.0, 0.0], [600.0, 400.0], [123.5, 77.25]])
    out = t.apply_coords(coords, size)
    np.testing.assert_allclose(out[:, 0], coords[:, 0] * 1024 / 600)
    np.testing.assert_allclose(out[:, 1], coords[:, 1] * 683 / 400)
    np.testing.assert_allclose(t.invert_coords(out, size), coords, rtol=1e-12)
    assert coords[2, 0] == 123.5  # input untouched
    boxes = np.array([[10.0, 20.0, 300.0, 390.0], [0, 0, 600, 400]])
    rb = t.apply_boxes(boxes, size)
    np.testing.assert_allclose(rb, t.apply_coords(boxes.reshape(-1, 2, 2), size).reshape(-1, 4))
    np.testing.assert_allclose(t.invert_boxes(rb, size), boxes, rtol=1e-12)
    assert t.apply_boxes(boxes[0], size).shape == (1, 4)


def test_torch_versions_agree_with_numpy():
    t = ResizeLongestSide(1024)
    size = (333, 517)
    coords = np.random.default_rng(0).uniform(0, 300, (5, 3, 2))
    torch_out = t.apply_coords_torch(torch.as_tensor(coords), size)
    assert torch_out.dtype == torch.float32 and torch_out.shape == (5, 3, 2)
    np.testing.assert_allclose(torch_out.numpy(), t.apply_coords(coords, size), rtol=1e-6)
    boxes = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(
        t.apply_boxes_torch(boxes, size).numpy(), t.apply_boxes(boxes.numpy(), size), rtol=1e-6
    )


def test_apply_image_is_pil_bilinear_to_the_long_side():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    out = ResizeLongestSide(64).apply_image(image)
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    # torchvision's PIL path, which Meta's implementation uses
    from torchvision.transforms.functional import resize, to_pil_image

    np.testing.assert_array_equal(out, np.asarray(resize(to_pil_image(image), [64, 48])))
    assert np.array_equal(out, np.asarray(Image.fromarray(image).resize((48, 64), Image.BILINEAR)))


def test_apply_image_torch_uses_spatial_dims():
    x = torch.rand(2, 3, 40, 30)
    assert ResizeLongestSide(64).apply_image_torch(x).shape == (2, 3, 64, 48)

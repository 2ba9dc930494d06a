"""Transforms and augmentations: Detectron2's sizes, resampling, coordinate maps and clipping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from masktron.data import transforms as T
from masktron.data.transforms.polygon_clip import clip_polygon_to_box


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@pytest.mark.parametrize(
    ("h", "w", "short", "max_size", "expected"),
    [
        (480, 640, 800, 1333, (800, 1067)),  # 640 * 800/480 = 1066.67 -> 1067
        (640, 427, 800, 1333, (1199, 800)),  # 640 * 800/427 = 1199.06
        (100, 1000, 800, 1333, (133, 1333)),  # long side capped: 800x8000 scaled by 1333/8000
        (512, 512, 800, 1333, (800, 800)),
        (427, 640, 640, 1333, (640, 959)),  # 640 * 640/427 = 959.25
        (3, 5, 2, 1333, (2, 3)),  # 5 * 2/3 = 3.33
    ],
)
def test_resize_shortest_edge_output_shape(h, w, short, max_size, expected):
    assert T.ResizeShortestEdge.get_output_shape(h, w, short, max_size) == expected


def test_resize_shortest_edge_rounds_half_up():
    # 250 * 300/200 = 375.0 exactly and 3 * 5/2 = 7.5 -> int(7.5 + 0.5) = 8 (not banker's 8/7).
    assert T.ResizeShortestEdge.get_output_shape(200, 250, 300, 10**6) == (300, 375)
    assert T.ResizeShortestEdge.get_output_shape(2, 3, 5, 10**6) == (5, 8)


def test_resize_shortest_edge_sampling():
    img = np.zeros((100, 200, 3), np.uint8)
    np.random.seed(0)
    range_aug = T.ResizeShortestEdge((10, 12), 1000, "range")
    sizes = {range_aug.get_transform(img).new_h for _ in range(200)}
    assert sizes == {10, 11, 12}
    choice_aug = T.ResizeShortestEdge((10, 20), 1000, "choice")
    sizes = {choice_aug.get_transform(img).new_h for _ in range(200)}
    assert sizes == {10, 20}
    assert isinstance(T.ResizeShortestEdge(0, 1000, "choice").get_transform(img), T.NoOpTransform)
    with pytest.raises(ValueError, match="range"):
        T.ResizeShortestEdge((1, 2, 3), 1000, "range")


def test_resize_transform_uint8_is_pil_bilinear():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    tfm = T.ResizeTransform(37, 53, 20, 29)
    out = tfm.apply_image(img)
    expected = np.asarray(Image.fromarray(img).resize((29, 20), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out, expected)
    # PIL's bilinear filter widens with the shrink factor (antialiasing): unlike torch's.
    torch_out = F.interpolate(
        torch.from_numpy(img).permute(2, 0, 1)[None].float(), (20, 29), mode="bilinear"
    )
    assert not np.allclose(out, torch_out[0].permute(1, 2, 0).numpy(), atol=1)
    # Single-channel and greyscale arrays keep their layout.
    assert tfm.apply_image(img[:, :, :1]).shape == (20, 29, 1)
    assert tfm.apply_image(img[:, :, 0]).shape == (20, 29)


def test_resize_transform_float_uses_torch_interpolate():
    img = np.random.default_rng(1).random((8, 12, 2)).astype(np.float32)
    out = T.ResizeTransform(8, 12, 16, 6).apply_image(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
    ref = F.interpolate(x, (16, 6), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("h", "w", "new_h", "new_w"), [(37, 53, 20, 29), (5, 7, 13, 3), (64, 64, 64, 80)]
)
def test_resize_nearest_matches_pil_for_stacked_masks(h, w, new_h, new_w):
    masks = np.random.default_rng(2).integers(0, 2, (h, w, 6), dtype=np.uint8)
    out = T.ResizeTransform(h, w, new_h, new_w).apply_segmentation(masks)
    for c in range(6):
        reference = Image.fromarray(masks[:, :, c]).resize((new_w, new_h), Image.Resampling.NEAREST)
        np.testing.assert_array_equal(out[:, :, c], np.asarray(reference))


def test_resize_transform_segmentation_nearest_and_coords():
    seg = np.arange(16, dtype=np.uint8).reshape(4, 4)
    tfm = T.ResizeTransform(4, 4, 8, 8)
    out = tfm.apply_segmentation(seg)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(seg, 2, 0), 2, 1))
    coords = tfm.apply_coords(np.array([[1.0, 3.0], [4.0, 4.0]]))
    np.testing.assert_allclose(coords, [[2.0, 6.0], [8.0, 8.0]])
    np.testing.assert_allclose(tfm.inverse().apply_coords(coords), [[1.0, 3.0], [4.0, 4.0]])
    with pytest.raises(ValueError, match="4x4"):
        tfm.apply_image(np.zeros((5, 4), np.uint8))


def test_hflip_maps_x_to_width_minus_x():
    img = np.arange(12, dtype=np.uint8).reshape(2, 6)
    tfm = T.HFlipTransform(6)
    np.testing.assert_array_equal(tfm.apply_image(img), img[:, ::-1])
    np.testing.assert_allclose(
        tfm.apply_coords(np.array([[0.0, 1.0], [2.5, 0.0]])), [[6, 1], [3.5, 0]]
    )
    # Boxes stay XYXY with x0 <= x1 after the flip.
    np.testing.assert_allclose(tfm.apply_box(np.array([[1.0, 2.0, 3.0, 4.0]])), [[3, 2, 5, 4]])
    vflip = T.VFlipTransform(4)
    np.testing.assert_allclose(vflip.apply_box(np.array([[1.0, 0.0, 3.0, 1.0]])), [[1, 3, 3, 4]])


def test_crop_transform_image_coords_polygons():
    img = np.arange(100).reshape(10, 10)
    crop = T.CropTransform(2, 3, 4, 5)
    np.testing.assert_array_equal(crop.apply_image(img), img[3:8, 2:6])
    np.testing.assert_allclose(crop.apply_coords(np.array([[2.0, 3.0]])), [[0, 0]])
    # Detectron2's example: triangle (0,0),(2,0),(0,2) in window x in [1, 2]: area 1/2 of it left.
    tri = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    (clipped,) = T.CropTransform(1, 0, 1, 2).apply_polygons([tri])
    assert _area(clipped) == pytest.approx(0.5)
    assert clipped[:, 0].min() == pytest.approx(0) and clipped[:, 0].max() == pytest.approx(1)
    # Entirely outside: dropped.
    assert T.CropTransform(5, 5, 2, 2).apply_polygons([tri]) == []


def test_polygon_clip_concave_keeps_area():
    # A U shape (outer 3x3 minus the notch [1,2]x[1,3]) clipped by y <= 2 leaves two feet joined
    # along the edge: area 3*2 - 1*1 = 5.
    u_shape = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]], float)
    out = clip_polygon_to_box(u_shape, (0, 0, 3, 2))
    assert _area(out) == pytest.approx(5.0)
    inside = clip_polygon_to_box(u_shape, (-1, -1, 10, 10))
    assert _area(inside) == pytest.approx(_area(u_shape))
    assert len(clip_polygon_to_box(u_shape, (5, 5, 6, 6))) == 0


def test_transform_list_flattens_and_inverts():
    resize, flip = T.ResizeTransform(10, 20, 20, 40), T.HFlipTransform(40)
    tl = T.TransformList([T.TransformList([resize]), flip])
    assert len(tl) == 2 and tl[0] is resize
    pts = np.array([[5.0, 5.0], [20.0, 10.0]])
    out = tl.apply_coords(pts.copy())
    np.testing.assert_allclose(out, [[30, 10], [0, 20]])
    np.testing.assert_allclose(tl.inverse().apply_coords(out), pts)
    tl += T.NoOpTransform()
    assert len(tl) == 3
    with pytest.raises(TypeError):
        T.TransformList([object()])


def test_random_flip_probability_and_errors():
    img = np.zeros((4, 6, 3), np.uint8)
    assert isinstance(T.RandomFlip(prob=1.0).get_transform(img), T.HFlipTransform)
    assert isinstance(T.RandomFlip(prob=0.0).get_transform(img), T.NoOpTransform)
    vflip = T.RandomFlip(prob=1.0, horizontal=False, vertical=True).get_transform(img)
    assert isinstance(vflip, T.VFlipTransform) and vflip.height == 4
    with pytest.raises(ValueError):
        T.RandomFlip(horizontal=True, vertical=True)
    np.random.seed(0)
    flips = [isinstance(T.RandomFlip().get_transform(img), T.HFlipTransform) for _ in range(400)]
    assert 150 < sum(flips) < 250


@pytest.mark.parametrize(
    ("crop_type", "size", "check"),
    [
        ("relative", (0.5, 0.25), lambda h, w: (h, w) == (50, 50)),
        ("relative_range", (0.5, 0.5), lambda h, w: 50 <= h <= 100 and 100 <= w <= 200),
        ("absolute", (30, 500), lambda h, w: (h, w) == (30, 200)),
        ("absolute_range", (20, 40), lambda h, w: 20 <= h <= 40 and 20 <= w <= 40),
    ],
)
def test_random_crop_sizes(crop_type, size, check):
    img = np.zeros((100, 200), np.uint8)
    aug = T.RandomCrop(crop_type, size)
    for _ in range(20):
        tfm = aug.get_transform(img)
        assert check(tfm.h, tfm.w)
        assert 0 <= tfm.x0 <= 200 - tfm.w and 0 <= tfm.y0 <= 100 - tfm.h


def test_aug_input_applies_one_transform_to_everything():
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :5] = 255  # the left quarter is white
    sem_seg = (image[:, :, 0] > 0).astype(np.uint8)
    boxes = np.array([[0.0, 0.0, 5.0, 10.0]])
    aug_input = T.AugInput(image, boxes=boxes, sem_seg=sem_seg)
    tfms = aug_input.apply_augmentations(
        [T.Resize((20, 40)), T.RandomFlip(prob=1.0), T.CropTransform(0, 0, 40, 10)]
    )
    assert len(tfms) == 3 and isinstance(tfms[2], T.CropTransform)
    np.testing.assert_allclose(aug_input.boxes, [[30, 0, 40, 20]])  # crops do not clip boxes
    assert aug_input.image.shape == (10, 40, 3)
    np.testing.assert_array_equal(aug_input.sem_seg[:, 30:], 1)
    np.testing.assert_array_equal(aug_input.sem_seg[:, :30], 0)
    assert (aug_input.image[:, 31:, 0] == 255).all() and (aug_input.image[:, :29, 0] == 0).all()
    out, tfms = T.apply_augmentations([T.Resize(5)], image)
    assert out.shape == (5, 5, 3) and isinstance(tfms, T.TransformList)
    with pytest.raises(ValueError):
        T.AugInput(np.zeros(3))


def test_augmentation_missing_input_is_clear():
    class NeedsBoxes(T.Augmentation):
        def get_transform(self, image, boxes):
            return T.NoOpTransform()

    with pytest.raises(AttributeError, match="boxes"):
        NeedsBoxes()(type("Bare", (), {"image": np.zeros((2, 2))})())
    assert "ResizeShortestEdge(short_edge_length=(800, 800)" in repr(
        T.ResizeShortestEdge(800, 1333, "choice")
    )

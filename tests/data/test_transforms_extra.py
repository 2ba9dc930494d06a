"""ScaleTransform, ExtentTransform, PadTransform, ColorTransform, ResizeScale, FixedSizeCrop and
RandomApply with Detectron2's semantics."""

import numpy as np
import pycocotools.mask as mask_util
import pytest

from masktron.data import detection_utils as utils
from masktron.data import transforms as T
from masktron.structures import BitMasks


def test_scale_transform():
    img = np.full((4, 6, 3), 7, np.uint8)
    t = T.ScaleTransform(4, 6, 8, 12)
    out = t.apply_image(img)
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8 and (out == 7).all()
    coords = t.apply_coords(np.array([[6.0, 4.0], [3.0, 1.0]]))
    assert coords.tolist() == [[12.0, 8.0], [6.0, 2.0]]
    seg = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert set(np.unique(t.apply_segmentation(seg))) <= set(seg.ravel())  # nearest: no new labels
    back = t.inverse()
    assert back.apply_image(out).shape == (4, 6, 3)
    with pytest.raises(ValueError):
        t.apply_image(np.zeros((5, 6, 3), np.uint8))


def test_extent_transform_maps_the_rectangle_onto_the_output():
    img = np.zeros((20, 20), np.uint8)
    img[5:10, 5:10] = 255
    t = T.ExtentTransform(src_rect=(5, 5, 10, 10), output_size=(10, 10))
    out = t.apply_image(img)
    assert out.shape == (10, 10) and out[2:8, 2:8].min() == 255
    corners = t.apply_coords(np.array([[5.0, 5.0], [10.0, 10.0], [7.5, 5.0]]))
    assert np.allclose(corners, [[0, 0], [10, 10], [5, 0]])


def test_pad_and_color_transforms():
    pad = T.PadTransform(1, 2, 3, 0, orig_w=4, orig_h=3, pad_value=9, seg_pad_value=255)
    img = np.zeros((3, 4, 3), np.uint8)
    out = pad.apply_image(img)
    assert out.shape == (5, 8, 3) and out[0, 0, 0] == 9 and out[2, 1, 0] == 0
    assert pad.apply_segmentation(np.zeros((3, 4), np.uint8))[0, 0] == 255
    assert pad.apply_coords(np.array([[0.0, 0.0]])).tolist() == [[1.0, 2.0]]
    assert pad.inverse().apply_image(out).shape == (3, 4, 3)
    color = T.ColorTransform(lambda x: 255 - x)
    assert (color.apply_image(img) == 255).all()
    assert color.apply_coords(np.array([[1.0, 2.0]])).tolist() == [[1.0, 2.0]]
    assert isinstance(color.inverse(), T.NoOpTransform)


def test_resize_scale_and_fixed_size_crop():
    image = np.zeros((40, 80, 3), np.uint8)
    resize = T.ResizeScale(min_scale=0.5, max_scale=0.5, target_height=100, target_width=100)
    t = resize.get_transform(image)
    assert (t.new_h, t.new_w) == (25, 50)  # fits in 50 x 50, aspect kept
    crop = T.FixedSizeCrop((40, 40))
    tl = crop.get_transform(np.zeros((30, 50, 3), np.uint8))
    out = tl.apply_image(np.zeros((30, 50, 3), np.uint8))
    assert out.shape == (40, 40, 3) and out[35, 0, 0] == 128  # padded rows below
    seg = tl.apply_segmentation(np.zeros((30, 50), np.uint8))
    assert seg.shape == (40, 40) and seg[35, 0] == 255
    no_pad = T.FixedSizeCrop((40, 40), pad=False).get_transform(np.zeros((30, 50, 3), np.uint8))
    assert no_pad.apply_image(np.zeros((30, 50, 3), np.uint8)).shape == (30, 40, 3)


def test_random_apply_get_transform():
    image = np.zeros((4, 4, 3), np.uint8)
    flip = T.RandomFlip(prob=1.0)
    assert isinstance(T.RandomApply(flip, prob=0.0).get_transform(image), T.NoOpTransform)
    assert isinstance(T.RandomApply(flip, prob=1.0).get_transform(image), T.HFlipTransform)


def test_rle_mask_follows_the_image_through_a_scale():
    mask = np.zeros((30, 40), order="F", dtype=np.uint8)
    mask[:, :20] = 1
    anno = {
        "bbox": [0, 0, 20, 30],
        "bbox_mode": utils.BoxMode.XYXY_ABS,
        "segmentation": mask_util.encode(mask[:, :, None])[0],
        "category_id": 0,
    }
    transforms = T.TransformList([T.HFlipTransform(40), T.ScaleTransform(30, 40, 60, 40)])
    out = utils.transform_instance_annotations(anno, transforms, (60, 40))
    assert out["segmentation"].shape == (60, 40) and out["segmentation"][:, 20:].all()
    inst = utils.annotations_to_instances([out, out], (60, 40), mask_format="bitmask")
    assert isinstance(inst.gt_masks, BitMasks) and inst.gt_masks.tensor.shape == (2, 60, 40)


def test_pil_color_transform_and_crop_orientation():
    from PIL import ImageOps

    img = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    solarized = T.PILColorTransform(lambda im: ImageOps.solarize(im, 100)).apply_image(img)
    assert np.array_equal(solarized, np.where(img >= 100, 255 - img, img))
    square = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])  # positive signed area
    for poly in (square, square[::-1]):
        (out,) = T.CropTransform(0, 0, 4, 4).apply_polygons([poly.copy()])
        x, y = out[:, 0], out[:, 1]
        assert float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) < 0


def test_masks_of_another_size_than_the_image_are_kept():
    mask = np.ones((30, 40), np.uint8)
    anno = {"bbox": [0, 0, 4, 4], "bbox_mode": utils.BoxMode.XYXY_ABS, "category_id": 0}
    annos = [dict(anno, segmentation=mask), dict(anno, segmentation=mask)]
    inst = utils.annotations_to_instances(annos, (60, 40), mask_format="bitmask")
    assert inst.gt_masks.tensor.shape == (2, 30, 40)  # stacked as they are, as Detectron2
    with pytest.raises(ValueError, match="different sizes"):
        utils.annotations_to_instances(
            [annos[0], dict(anno, segmentation=np.ones((5, 5), np.uint8))], (60, 40), "bitmask"
        )

from __future__ import annotations

import numpy as np
import pytest
import torch
from _vis_helpers import box_mask, region_color
from PIL import Image

from masktron.structures import Boxes, Instances
from masktron.visualization import ColorMode, Visualizer, create_text_labels

# Three instances on the 512 x 512 astronaut: two "dog"s far apart, one "cat".
BOXES = [(40, 60, 160, 200), (330, 300, 470, 440), (300, 40, 440, 160)]
CLASSES = [2, 2, 1]


def make_instances(img, boxes=BOXES, classes=CLASSES, masks=True, scores=True):
    h, w = img.shape[:2]
    fields = {"pred_boxes": Boxes(torch.tensor(boxes, dtype=torch.float32))}
    if classes is not None:
        fields["pred_classes"] = torch.tensor(classes, dtype=torch.int64)
    if scores:
        fields["scores"] = torch.linspace(0.99, 0.6, len(boxes))
    if masks:
        fields["pred_masks"] = torch.from_numpy(np.stack([box_mask(h, w, b) for b in boxes]))
    return Instances((h, w), **fields)


def interior(box, margin=15):
    x0, y0, x1, y1 = box
    return (x0 + margin, y0 + margin, x1 - margin, y1 - margin)


def test_shape_dtype_and_untouched_far_pixels(astronaut, metadata):
    out = Visualizer(astronaut, metadata).draw_instance_predictions(make_instances(astronaut))
    img = out.get_image()
    assert img.shape == astronaut.shape and img.dtype == np.uint8
    for box in BOXES:  # masked pixels changed colour
        x0, y0, x1, y1 = interior(box)
        assert np.abs(img[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1]).mean() > 20
    # Far from every box and label: identical.
    np.testing.assert_array_equal(img[470:, :250], astronaut[470:, :250])
    np.testing.assert_array_equal(img[230:280, 180:300], astronaut[230:280, 180:300])


@pytest.mark.parametrize("scale", [0.5, 1.2, 2.0])
def test_scale(astronaut, metadata, scale):
    out = Visualizer(astronaut, metadata, scale=scale).draw_instance_predictions(
        make_instances(astronaut)
    )
    img = out.get_image()
    size = int(512 * scale + 1e-2)
    assert img.shape == (size, size, 3)
    # The mask of the first box is drawn where the box is, at the output scale.
    x0, y0, x1, y1 = (int(v * scale) for v in interior(BOXES[0]))
    ref = np.asarray(Image.fromarray(astronaut).resize((size, size)))
    assert np.abs(img[y0:y1, x0:x1].astype(int) - ref[y0:y1, x0:x1]).mean() > 20


def test_instances_of_a_class_share_a_colour(astronaut, metadata):
    out = Visualizer(astronaut, metadata).draw_instance_predictions(make_instances(astronaut))
    img = out.get_image()
    colors = [region_color(img, astronaut, 0.5, interior(b)) for b in BOXES]
    np.testing.assert_allclose(colors[0], colors[1], atol=3)  # both "dog"
    assert np.abs(colors[0] - colors[2]).max() > 30  # "cat" differs
    # Deterministic across Visualizers and images: the same class gets the same colour.
    again = Visualizer(astronaut[::-1].copy(), metadata).draw_instance_predictions(
        make_instances(astronaut, boxes=[BOXES[0]], classes=[1])
    )
    flipped = astronaut[::-1]
    np.testing.assert_allclose(
        region_color(again.get_image(), flipped, 0.5, interior(BOXES[0])), colors[2], atol=3
    )


def test_segmentation_mode_uses_thing_colors(astronaut, metadata):
    vis = Visualizer(astronaut, metadata, instance_mode=ColorMode.SEGMENTATION)
    img = vis.draw_instance_predictions(make_instances(astronaut)).get_image()
    for box, cls in zip(BOXES, CLASSES):
        got = region_color(img, astronaut, 0.8, interior(box))
        np.testing.assert_allclose(got, metadata.thing_colors[cls], atol=3)


def test_image_bw_greys_the_background(astronaut, metadata):
    vis = Visualizer(astronaut, metadata, instance_mode=ColorMode.IMAGE_BW)
    img = vis.draw_instance_predictions(make_instances(astronaut)).get_image().astype(int)
    far = img[470:, :250]
    assert np.abs(far - far.mean(axis=2, keepdims=True)).max() <= 1  # grey
    assert (
        np.abs(
            astronaut[470:, :250].astype(int) - astronaut[470:, :250].mean(2, keepdims=True)
        ).max()
        > 30
    )
    x0, y0, x1, y1 = interior(BOXES[0])
    inside = img[y0:y1, x0:x1]
    assert np.abs(inside - inside.mean(axis=2, keepdims=True)).mean() > 5  # still coloured


def test_labels_are_drawn_at_the_top_left(astronaut, metadata):
    plain = Visualizer(astronaut, metadata).draw_instance_predictions(
        make_instances(astronaut, classes=None, scores=False)  # no labels at all
    )
    labelled = Visualizer(astronaut, metadata).draw_instance_predictions(make_instances(astronaut))
    diff = np.abs(labelled.get_image().astype(int) - plain.get_image()).sum(axis=2) > 0
    x0, y0, x1, y1 = BOXES[0]
    above = diff[y0 - 12 : y0, x0 : x0 + 40]  # the label sits on the box's top edge
    assert above.mean() > 0.3
    assert not diff[y1 + 5 :, x1 + 5 : 290].any()  # nothing far from the labels
    # A dark translucent background (black at 0.8) behind the text: where no glyph is, the
    # label area is the picture at a fifth of its brightness.
    region = (slice(y0 - 8, y0 - 3), slice(x0 + 2, x0 + 30))
    dimmed = np.abs(labelled.get_image()[region] - 0.2 * plain.get_image()[region]) <= 2
    assert dimmed.all(axis=2).mean() > 0.25  # (the plain picture there is far from black)


def test_label_goes_inside_at_the_image_edge(astronaut, metadata):
    box = (100, 0, 300, 150)  # touches the top edge
    kw = dict(boxes=[box], classes=[0], masks=False)
    plain = Visualizer(astronaut, metadata).draw_instance_predictions(
        make_instances(astronaut, boxes=[box], classes=None, scores=False, masks=False)
    )
    labelled = Visualizer(astronaut, metadata).draw_instance_predictions(
        make_instances(astronaut, **kw)
    )
    diff = np.abs(labelled.get_image().astype(int) - plain.get_image()).sum(axis=2) > 0
    assert diff[3:12, 105:140].mean() > 0.3  # inside, below the top edge


def test_empty_instances_leave_the_image_unchanged(astronaut, metadata):
    h, w = astronaut.shape[:2]
    empty = Instances(
        (h, w),
        pred_boxes=Boxes(torch.zeros(0, 4)),
        scores=torch.zeros(0),
        pred_classes=torch.zeros(0, dtype=torch.int64),
        pred_masks=torch.zeros(0, h, w, dtype=torch.bool),
    )
    for inst in (empty, Instances((h, w))):
        out = Visualizer(astronaut, metadata).draw_instance_predictions(inst)
        np.testing.assert_array_equal(out.get_image(), astronaut)


def test_boxes_without_masks(astronaut, metadata):
    out = Visualizer(astronaut, metadata).draw_instance_predictions(
        make_instances(astronaut, masks=False)
    )
    img = out.get_image()
    x0, y0, x1, y1 = BOXES[0]
    assert (
        img[y0 + 20 : y1 - 20, x0 + 20 : x1 - 20] == astronaut[y0 + 20 : y1 - 20, x0 + 20 : x1 - 20]
    ).all()
    assert (img[y0 + 20 : y1 - 20, x0] != astronaut[y0 + 20 : y1 - 20, x0]).any(axis=1).all()


def test_small_instances_stay_on_top(astronaut, metadata):
    big, small = (50, 50, 450, 450), (200, 200, 260, 260)
    # Given small first: drawing order must still put the small one on top.
    out = Visualizer(astronaut, metadata).draw_instance_predictions(
        make_instances(astronaut, boxes=[small, big], classes=[1, 0], scores=False)
    )
    img = out.get_image().astype(float)
    vis = Visualizer(astronaut, metadata)
    c_small, c_big = vis._class_colors([1, 0])
    base = astronaut[230, 230].astype(float)
    small_on_top = 0.5 * (0.5 * base + 0.5 * c_big) + 0.5 * c_small
    big_on_top = 0.5 * (0.5 * base + 0.5 * c_small) + 0.5 * c_big
    got = img[230, 230]
    assert np.abs(got - small_on_top).max() < 3 < np.abs(got - big_on_top).max()


def test_hundreds_of_instances(astronaut):
    rng = np.random.default_rng(0)
    n = 300
    xy = rng.uniform(0, 450, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 60, (n, 2))], axis=1).astype(int)
    inst = make_instances(astronaut, boxes=boxes.tolist(), classes=rng.integers(0, 80, n).tolist())
    img = Visualizer(astronaut).draw_instance_predictions(inst).get_image()
    assert img.shape == astronaut.shape
    assert (img != astronaut).any(axis=2).mean() > 0.5


def test_masks_without_boxes_are_labelled_on_the_mask(astronaut, metadata):
    inst = make_instances(astronaut)
    inst.remove("pred_boxes")
    labelled = Visualizer(astronaut, metadata).draw_instance_predictions(inst).get_image()
    inst.remove("scores")
    inst.remove("pred_classes")
    plain = Visualizer(astronaut, metadata).draw_instance_predictions(inst).get_image()
    diff = np.abs(labelled.astype(int) - plain).sum(axis=2) > 0
    x0, y0, x1, y1 = BOXES[0]
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    assert diff[cy - 4 : cy + 4, cx - 10 : cx + 10].mean() > 0.3


def test_keypoints_are_drawn(astronaut, metadata):
    inst = make_instances(astronaut, masks=False, scores=False, classes=None)
    kps = torch.zeros(3, 2, 3)
    kps[:, 0] = torch.tensor([250.0, 480.0, 0.9])  # visible
    kps[:, 1] = torch.tensor([20.0, 480.0, 0.01])  # under the threshold
    inst.pred_keypoints = kps
    img = Visualizer(astronaut, metadata).draw_instance_predictions(inst).get_image()
    assert tuple(img[480, 250]) == (255, 0, 0)
    np.testing.assert_array_equal(img[480, 20], astronaut[480, 20])


def test_bad_masks_raise_a_clear_error(astronaut, metadata):
    inst = make_instances(astronaut)
    inst.remove("pred_masks")
    inst.pred_masks = torch.zeros(3, 100, 100, dtype=torch.bool)
    with pytest.raises(ValueError, match="pred_masks"):
        Visualizer(astronaut, metadata).draw_instance_predictions(inst)


def test_bad_images_raise_a_clear_error():
    with pytest.raises(ValueError, match="img_rgb"):
        Visualizer(np.zeros((10, 10, 2)))
    grey = Visualizer(np.full((10, 12), 300.0)).output.get_image()  # grey and out of range
    assert grey.shape == (10, 12, 3) and (grey == 255).all()


def test_text_labels():
    names = ["person", "cat"]
    assert create_text_labels([0, 1], [0.984, 0.5], names) == ["person 98%", "cat 50%"]
    assert create_text_labels([5], None, names) == ["5"]
    assert create_text_labels(None, [0.25], None) == ["25%"]
    assert create_text_labels([1], None, names, [True]) == ["cat|crowd"]
    assert create_text_labels(None, None, names) is None


def test_detectron2_import_path():
    from masktron.utils import visualizer as d2_path
    from masktron.visualization import visualizer

    assert d2_path.Visualizer is visualizer.Visualizer
    assert d2_path.ColorMode is visualizer.ColorMode
    assert d2_path.VisImage is visualizer.VisImage

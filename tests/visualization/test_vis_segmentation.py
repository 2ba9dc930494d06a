from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from _vis_helpers import SHARED_DATA, region_color, shrink
from PIL import Image

from masktron.data.catalog import Metadata
from masktron.visualization import ColorMode, Visualizer


def three_regions(h=512, w=512) -> np.ndarray:
    """Sky on top, grass at the bottom left, road at the bottom right, an ignored strip."""
    seg = np.zeros((h, w), dtype=np.int64)
    seg[200:, :250] = 1
    seg[200:, 250:] = 2
    seg[190:200] = 255
    return seg


def test_sem_seg_colours_each_segment(astronaut, metadata):
    seg = three_regions()
    img = Visualizer(astronaut, metadata).draw_sem_seg(torch.from_numpy(seg)).get_image()
    for label, box in [
        (0, (100, 40, 400, 150)),
        (1, (40, 300, 200, 480)),
        (2, (300, 300, 480, 480)),
    ]:
        got = region_color(img, astronaut, 0.8, box)
        np.testing.assert_allclose(got, metadata.stuff_colors[label], atol=3)
    np.testing.assert_array_equal(img[192:198, 100:400], astronaut[192:198, 100:400])  # 255


def test_sem_seg_skips_unknown_ids_and_small_pieces(astronaut, metadata):
    seg = np.full((512, 512), 255, dtype=np.int64)
    seg[:100, :100] = 7  # past the 3 stuff classes
    seg[300:400, 300:400] = 1
    seg[10:14, 300:305] = 1  # a 20-pixel piece of the same class
    img = Visualizer(astronaut, metadata).draw_sem_seg(seg, area_threshold=50).get_image()
    np.testing.assert_array_equal(img[:100, :100], astronaut[:100, :100])
    np.testing.assert_array_equal(img[5:20, 295:310], astronaut[5:20, 295:310])
    assert (img[320:380, 320:380] != astronaut[320:380, 320:380]).any(axis=2).all()
    kept = Visualizer(astronaut, metadata).draw_sem_seg(seg).get_image()  # no threshold
    assert (kept[10:14, 300:305] != astronaut[10:14, 300:305]).any(axis=2).all()


def test_sem_seg_without_metadata_and_bad_shape(astronaut):
    seg = three_regions()
    img = Visualizer(astronaut).draw_sem_seg(seg).get_image()
    assert (img[300:400, 40:200] != astronaut[300:400, 40:200]).any(axis=2).mean() > 0.9
    np.testing.assert_array_equal(img[192:198], astronaut[192:198])  # 255 still ignored
    with pytest.raises(ValueError, match="sem_seg.*shape"):
        Visualizer(astronaut).draw_sem_seg(seg[:100])


def panoptic_map():
    """Stuff 'sky' (id 1) on top, two 'person' things (ids 2, 3), void (0) elsewhere."""
    pan = np.zeros((512, 512), dtype=np.int64)
    pan[:150] = 1
    pan[250:450, 50:200] = 2
    pan[250:450, 300:450] = 3
    info = [
        {"id": 1, "isthing": False, "category_id": 0},
        {"id": 2, "isthing": True, "category_id": 0, "score": 0.9},
        {"id": 3, "isthing": True, "category_id": 0, "score": 0.8},
    ]
    return pan, info


def test_panoptic_colours_stuff_and_things(astronaut, metadata):
    pan, info = panoptic_map()
    out = Visualizer(astronaut, metadata).draw_panoptic_seg(torch.from_numpy(pan), info)
    img = out.get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.7, (100, 30, 400, 120)), metadata.stuff_colors[0], atol=3
    )
    for box in [(80, 300, 170, 430), (330, 300, 420, 430)]:
        got = region_color(img, astronaut, 0.7, box)
        np.testing.assert_allclose(got, metadata.thing_colors[0], atol=3)
    np.testing.assert_array_equal(img[470:, 220:290], astronaut[470:, 220:290])  # void


def test_panoptic_image_bw_greys_void(astronaut, metadata):
    pan, info = panoptic_map()
    vis = Visualizer(astronaut, metadata, instance_mode=ColorMode.IMAGE_BW)
    img = vis.draw_panoptic_seg(pan, info).get_image().astype(int)
    void = img[470:, 220:290]
    assert np.abs(void - void.mean(axis=2, keepdims=True)).max() <= 1


def test_panoptic_ids_with_label_divisor(astronaut, metadata):
    pan = np.full((512, 512), -1, dtype=np.int64)  # void
    pan[:150] = 1 * 1000  # stuff "grass" (category 1, instance 0)
    pan[250:450, 50:200] = 2 * 1000 + 1  # thing "dog" (category 2), instance 1
    meta = Metadata(
        name="pdl",
        label_divisor=1000,
        **{
            k: metadata.get(k)
            for k in ("thing_classes", "thing_colors", "stuff_classes", "stuff_colors")
        },
    )
    img = Visualizer(astronaut, meta).draw_panoptic_seg(pan, None).get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.7, (100, 30, 400, 120)), meta.stuff_colors[1], atol=3
    )
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.7, (80, 300, 170, 430)), meta.thing_colors[2], atol=3
    )
    np.testing.assert_array_equal(img[470:, 220:290], astronaut[470:, 220:290])
    # With Detectron2's table, membership decides: category 1 listed as a thing.
    meta.set(thing_dataset_id_to_contiguous_id={5: 1})
    img = Visualizer(astronaut, meta).draw_panoptic_seg(pan, None).get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.7, (100, 30, 400, 120)), meta.thing_colors[1], atol=3
    )
    with pytest.raises(ValueError, match="label_divisor"):
        Visualizer(astronaut, metadata).draw_panoptic_seg(pan, None)


def test_panoptic_bad_segments_info(astronaut, metadata):
    pan, info = panoptic_map()
    del info[1]["isthing"]
    with pytest.raises(ValueError, match=r"segments_info\[1\].*isthing"):
        Visualizer(astronaut, metadata).draw_panoptic_seg(pan, info)


def test_real_panoptic_sample():
    """panopticapi's COCO sample: every labelled segment is drawn in its category's colour."""
    root = os.path.join(SHARED_DATA, "panoptic_sample")
    if not os.path.isdir(root):
        pytest.skip("panoptic sample not available")
    with open(os.path.join(root, "panoptic_coco_categories.json")) as f:
        categories = json.load(f)
    with open(os.path.join(root, "sample_data", "panoptic_examples.json")) as f:
        anno = json.load(f)["annotations"][0]
    things = [c for c in categories if c["isthing"]]
    stuff = [c for c in categories if not c["isthing"]]
    contiguous = {c["id"]: i for i, c in enumerate(things)} | {
        c["id"]: i for i, c in enumerate(stuff)
    }
    meta = Metadata(
        name="coco_panoptic_sample",
        thing_classes=[c["name"] for c in things],
        thing_colors=[c["color"] for c in things],
        stuff_classes=[c["name"] for c in stuff],
        stuff_colors=[c["color"] for c in stuff],
    )
    info = [
        {
            "id": s["id"],
            "isthing": bool(next(c["isthing"] for c in categories if c["id"] == s["category_id"])),
            "category_id": contiguous[s["category_id"]],
        }
        for s in anno["segments_info"]
    ]
    stem = os.path.splitext(anno["file_name"])[0]
    with Image.open(os.path.join(root, "sample_data", "input_images", stem + ".jpg")) as im:
        photo = np.asarray(im.convert("RGB"))
    with Image.open(
        os.path.join(root, "sample_data", "panoptic_examples", anno["file_name"])
    ) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    pan = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]
    img = Visualizer(photo, meta).draw_panoptic_seg(pan, info).get_image()
    checked = 0
    for s in info:
        table = meta.thing_colors if s["isthing"] else meta.stuff_colors
        # Pixels well inside the segment (away from outlines and labels drawn over it).
        inner = shrink(pan == s["id"], 3)
        if inner.sum() < 3000:  # large enough that a label covers a small part
            continue
        got = np.median((img[inner].astype(float) - 0.3 * photo[inner]) / 0.7, axis=0)
        np.testing.assert_allclose(got, table[s["category_id"]], atol=4, err_msg=str(s))
        checked += 1
    assert checked >= 5
    # Void pixels 3+ px from any segment keep the photo, but where labels spill over them.
    void = ~np.isin(pan, [s["id"] for s in info])
    deep = shrink(void, 3)
    assert deep.sum() > 500
    assert (img[deep] == photo[deep]).all(axis=1).mean() > 0.6

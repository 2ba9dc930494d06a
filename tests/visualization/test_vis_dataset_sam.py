from __future__ import annotations

import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from _vis_helpers import SHARED_DATA, box_mask, region_color
from PIL import Image

from masktron.data.catalog import Metadata
from masktron.structures import BoxMode
from masktron.visualization import Visualizer
from masktron.visualization.colormap import id_color


def test_dataset_dict_polygons_rle_and_boxes(astronaut, metadata):
    h, w = astronaut.shape[:2]
    rle = mask_util.encode(np.asfortranarray(box_mask(h, w, (300, 300, 450, 450)).astype(np.uint8)))
    dic = {
        "annotations": [
            {  # COCO XYWH box and a polygon
                "bbox": [40, 60, 120, 140],
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": [[40, 60, 160, 60, 160, 200, 40, 200]],
                "category_id": 2,
            },
            {  # a crowd region as compressed RLE, XYXY box
                "bbox": [300, 300, 450, 450],
                "bbox_mode": BoxMode.XYXY_ABS,
                "segmentation": rle,
                "category_id": 2,
                "iscrowd": 1,
            },
        ]
    }
    img = Visualizer(astronaut, metadata).draw_dataset_dict(dic).get_image()
    c0 = region_color(img, astronaut, 0.5, (60, 80, 140, 180))
    c1 = region_color(img, astronaut, 0.5, (320, 320, 430, 430))
    np.testing.assert_allclose(c0, c1, atol=3)  # the same class, the same colour
    # The XYWH box was converted: its right edge is at x = 160 (not at 120).
    col = img[100:180, 158:162].astype(int) - astronaut[100:180, 158:162]
    assert (np.abs(col).sum(axis=2) > 0).any(axis=1).all()
    np.testing.assert_array_equal(img[470:, :250], astronaut[470:, :250])


def test_dataset_dict_label_files(tmp_path, astronaut, metadata):
    h, w = astronaut.shape[:2]
    sem = np.full((h, w), 255, np.uint8)
    sem[:100] = 0
    Image.fromarray(sem).save(tmp_path / "sem.png")
    pan_ids = np.zeros((h, w), np.int64)
    pan_ids[300:400, 300:400] = 5 + 256 * 1  # id 261, RGB-encoded as COCO does
    rgb = np.stack([pan_ids % 256, pan_ids // 256 % 256, pan_ids // 65536], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / "pan.png")
    dic = {
        "sem_seg_file_name": str(tmp_path / "sem.png"),
        "pan_seg_file_name": str(tmp_path / "pan.png"),
        "segments_info": [{"id": 261, "isthing": True, "category_id": 1}],
    }
    img = Visualizer(astronaut, metadata).draw_dataset_dict(dic).get_image()
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.5, (100, 20, 400, 80)), metadata.stuff_colors[0], atol=3
    )
    np.testing.assert_allclose(
        region_color(img, astronaut, 0.5, (320, 320, 380, 380)), metadata.thing_colors[1], atol=3
    )
    with pytest.raises(OSError, match="missing.png"):
        Visualizer(astronaut).draw_dataset_dict(
            {"sem_seg_file_name": str(tmp_path / "missing.png")}
        )


def test_dataset_dict_errors(astronaut):
    with pytest.raises(ValueError, match=r"annotations\[0\].*bbox_mode"):
        Visualizer(astronaut).draw_dataset_dict(
            {"annotations": [{"bbox": [0, 0, 5, 5], "category_id": 0}]}
        )
    with pytest.raises(ValueError, match="segments_info"):
        Visualizer(astronaut).draw_dataset_dict({"pan_seg": np.zeros(astronaut.shape[:2], int)})


def test_real_coco_annotations():
    """The COCO sample image with a crowd annotation: polygons and RLE, 80-class names."""
    root = os.path.join(SHARED_DATA, "coco_sample")
    if not os.path.isdir(root):
        pytest.skip("COCO sample not available")
    with open(os.path.join(root, "annotations", "instances_val2017.json")) as f:
        coco = json.load(f)
    contiguous = {c["id"]: i for i, c in enumerate(coco["categories"])}
    image_id = next(a["image_id"] for a in coco["annotations"] if a["iscrowd"])
    info = next(i for i in coco["images"] if i["id"] == image_id)
    annos = [
        {
            "bbox": a["bbox"],
            "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": a["segmentation"],
            "category_id": contiguous[a["category_id"]],
            "iscrowd": a["iscrowd"],
        }
        for a in coco["annotations"]
        if a["image_id"] == image_id
    ]
    with Image.open(os.path.join(root, "images", "val2017", info["file_name"])) as im:
        photo = np.asarray(im.convert("RGB"))
    meta = Metadata(name="coco_sample", thing_classes=[c["name"] for c in coco["categories"]])
    img = Visualizer(photo, meta).draw_dataset_dict({"annotations": annos}).get_image()
    assert img.shape == photo.shape
    # Every annotation's pixels changed; the union of annotations is most of what changed.
    changed = (img != photo).any(axis=2)
    h, w = photo.shape[:2]
    for a in annos:
        seg = a["segmentation"]
        if isinstance(seg, list):  # polygons
            seg = mask_util.merge(mask_util.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):  # uncompressed RLE (COCO's crowd regions)
            seg = mask_util.frPyObjects(seg, h, w)
        m = mask_util.decode(seg).astype(bool)
        assert changed[m].mean() > 0.9


def sam_masks(h, w):
    yy, xx = np.mgrid[:h, :w]
    return np.stack(
        [
            (xx - 300) ** 2 + (yy - 200) ** 2 < 100**2,
            box_mask(h, w, (40, 260, 200, 380)),
            (xx - 480) ** 2 + (yy - 90) ** 2 < 40**2,
        ]
    )


def test_sam_masks_points_and_boxes(coffee):
    h, w = coffee.shape[:2]
    masks = sam_masks(h, w)
    points = np.array([[300, 200], [120, 320], [480, 90], [20, 20]])
    labels = np.array([1, 1, 0, -1])  # -1: SAM's padding point, not drawn
    boxes = np.array([[190, 90, 410, 310]])
    out = Visualizer(coffee).draw_sam_masks(
        masks, point_coords=points, point_labels=labels, boxes=boxes
    )
    img = out.get_image()
    assert img.shape == coffee.shape and img.dtype == np.uint8
    colors = [
        region_color(img, coffee, 0.5, b)
        for b in [(260, 140, 290, 170), (60, 280, 100, 300), (460, 110, 500, 125)]
    ]
    for i, c in enumerate(colors):  # distinct, deterministic colours per mask
        np.testing.assert_allclose(c, id_color(i), atol=3)
    assert (
        min(
            np.abs(a - b).max()
            for a, b in [(colors[0], colors[1]), (colors[1], colors[2]), (colors[0], colors[2])]
        )
        > 40
    )
    # Star centres: green for positive, red for negative; the padding point untouched.
    r, g, b = img[200, 300].astype(int)
    assert g > 180 and r < 60 and b < 60
    r, g, b = img[90, 480].astype(int)
    assert r > 180 and g < 60 and b < 60
    np.testing.assert_array_equal(img[20, 20], coffee[20, 20])
    # The box outline is green and opaque.
    assert img[200, 190, 1] > 180 and img[200, 190, 0] < 60
    np.testing.assert_array_equal(img[380:, 450:], coffee[380:, 450:])
    again = Visualizer(coffee).draw_sam_masks(
        masks, point_coords=points, point_labels=labels, boxes=boxes
    )
    np.testing.assert_array_equal(again.get_image(), img)


def test_sam_single_mask_and_errors(coffee):
    h, w = coffee.shape[:2]
    one = sam_masks(h, w)[0]
    img = Visualizer(coffee).draw_sam_masks(one, point_coords=[[300, 200]]).get_image()
    assert img[200, 300, 1] > 180  # a positive point by default
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        Visualizer(coffee).draw_sam_masks(one, point_coords=[[1, 1], [2, 2]], point_labels=[1])
    with pytest.raises(ValueError, match="masks"):
        Visualizer(coffee).draw_sam_masks(np.zeros((1, 10, 10), bool))

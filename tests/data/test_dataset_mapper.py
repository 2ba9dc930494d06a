"""DatasetMapper: image and annotations transformed together, Detectron2's outputs and filters."""

from __future__ import annotations

import copy

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from masktron.config import get_cfg
from masktron.data import DatasetMapper, register_coco_instances
from masktron.data import transforms as T
from masktron.data.datasets import load_coco_json
from masktron.data.detection_utils import SizeMismatchError
from masktron.structures import BitMasks, BoxMode, PolygonMasks


@pytest.fixture(scope="module")
def coco_val(shared_data) -> list[dict]:
    return load_coco_json(
        shared_data / "coco_sample/annotations/instances_val2017.json",
        shared_data / "coco_sample/images/val2017",
    )


def _cfg(**overrides):
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    for key, value in overrides.items():
        node = cfg
        *path, leaf = key.split("__")
        for p in path:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return cfg


def test_train_output_matches_detectron2_layout(coco_val):
    record = next(d for d in coco_val if any(a["iscrowd"] == 0 for a in d["annotations"]))
    before = copy.deepcopy(record)
    cfg = _cfg(INPUT__MIN_SIZE_TRAIN=[600], INPUT__MAX_SIZE_TRAIN=1000)
    out = DatasetMapper(cfg, is_train=True)(record)
    assert record == before  # the dataset dict is not modified
    assert {"file_name", "image_id", "height", "width", "image", "instances"} <= set(out)
    assert "annotations" not in out
    assert (out["height"], out["width"]) == (record["height"], record["width"])
    new_h, new_w = T.ResizeShortestEdge.get_output_shape(
        record["height"], record["width"], 600, 1000
    )
    assert out["image"].dtype == torch.uint8 and tuple(out["image"].shape) == (3, new_h, new_w)
    inst = out["instances"]
    assert inst.image_size == (new_h, new_w)
    assert inst.gt_classes.dtype == torch.int64
    assert isinstance(inst.gt_masks, PolygonMasks)
    assert len(inst) == sum(1 for a in record["annotations"] if not a["iscrowd"])


def test_boxes_and_polygons_follow_resize_and_flip(coco_val):
    record = max(coco_val, key=lambda d: len(d["annotations"]))
    h, w = record["height"], record["width"]
    new_h, new_w = h * 2 - 3, w + 5  # unequal x and y scales
    augs = [T.ResizeTransform(h, w, new_h, new_w), T.HFlipTransform(new_w)]
    mapper = DatasetMapper(True, augmentations=augs, image_format="RGB", use_instance_mask=True)
    out = mapper(record)
    sx, sy = new_w / w, new_h / h
    annos = [a for a in record["annotations"] if not a["iscrowd"]]
    expected_boxes = []
    for a in annos:
        x0, y0, x1, y1 = BoxMode.convert(a["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
        box = [new_w - x1 * sx, y0 * sy, new_w - x0 * sx, y1 * sy]
        expected_boxes.append(np.clip(box, 0, [new_w, new_h, new_w, new_h]))
    np.testing.assert_allclose(
        out["instances"].gt_boxes.tensor, np.array(expected_boxes), rtol=1e-5
    )
    for polys, a in zip(out["instances"].gt_masks.polygons, annos):
        for got, raw in zip(polys, a["segmentation"]):
            raw = np.asarray(raw, dtype=np.float64)
            np.testing.assert_allclose(got[0::2], new_w - raw[0::2] * sx)
            np.testing.assert_allclose(got[1::2], raw[1::2] * sy)
    # The image itself went through the same flip: compare with PIL by hand.
    image = np.asarray(
        Image.open(record["file_name"])
        .convert("RGB")
        .resize((new_w, new_h), Image.Resampling.BILINEAR)
    )
    np.testing.assert_array_equal(out["image"].permute(1, 2, 0).numpy(), image[:, ::-1])


@pytest.fixture
def square_dataset(tmp_path) -> dict:
    """A 90x120 image, black with a bright rectangle, annotated by polygon and by RLE."""
    image = np.zeros((90, 120, 3), np.uint8)
    image[20:50, 30:100] = 255
    Image.fromarray(image).save(tmp_path / "square.png")
    mask = np.zeros((90, 120), np.uint8)
    mask[20:50, 30:100] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    polygon = [30, 20, 100, 20, 100, 50, 30, 50]
    annos = [
        {
            "bbox": [30, 20, 70, 30],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 1,
            "segmentation": [polygon],
            "iscrowd": 0,
        },
        {
            "bbox": [30, 20, 70, 30],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 2,
            "segmentation": rle,
            "iscrowd": 0,
        },
        {
            "bbox": [0, 0, 10, 10],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 3,
            "segmentation": rle,
            "iscrowd": 1,
        },
    ]
    return {
        "file_name": str(tmp_path / "square.png"),
        "image_id": 5,
        "height": 90,
        "width": 120,
        "annotations": annos,
    }


@pytest.mark.parametrize("seed", range(6))
def test_crop_resize_flip_keep_masks_on_their_pixels(square_dataset, seed):
    cfg = _cfg(
        INPUT__MIN_SIZE_TRAIN=[60, 150],
        INPUT__MIN_SIZE_TRAIN_SAMPLING="range",
        INPUT__MASK_FORMAT="bitmask",
        INPUT__CROP__ENABLED=True,
        INPUT__CROP__TYPE="absolute_range",
        INPUT__CROP__SIZE=[60, 90],
    )
    np.random.seed(seed)
    out = DatasetMapper(cfg, True)(square_dataset)
    inst = out["instances"]
    assert set(inst.gt_classes.tolist()) <= {1, 2}  # the crowd annotation was dropped
    if len(inst) == 0:
        return  # the crop missed the square: nothing left, as Detectron2 filters
    assert isinstance(inst.gt_masks, BitMasks)
    bright = out["image"][0].numpy() > 127
    for mask in inst.gt_masks.tensor.numpy():
        iou = (mask & bright).sum() / (mask | bright).sum()
        assert iou > 0.85
    # Crops recompute boxes from masks (MASK_ON): tight around each mask.
    np.testing.assert_allclose(inst.gt_boxes.tensor, inst.gt_masks.get_bounding_boxes().tensor)


def test_polygon_format_refuses_rle_clearly(square_dataset):
    mapper = DatasetMapper(_cfg(INPUT__MIN_SIZE_TRAIN=[90]), True)
    with pytest.raises(ValueError, match=r"square.png \(image_id 5\).*INPUT.MASK_FORMAT"):
        mapper(square_dataset)


def test_empty_boxes_filtered_and_inference_drops_annotations(square_dataset):
    record = copy.deepcopy(square_dataset)
    record["annotations"] = record["annotations"][:1] + [
        {
            "bbox": [200, 10, 30, 30],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 4,
            "iscrowd": 0,
            "segmentation": [[200, 10, 230, 10, 230, 40]],
        },
    ]
    mapper = DatasetMapper(_cfg(INPUT__MIN_SIZE_TRAIN=[90], INPUT__RANDOM_FLIP="none"), True)
    inst = mapper(record)["instances"]
    assert inst.gt_classes.tolist() == [1]  # the box outside the image has no area left
    test_out = DatasetMapper(_cfg(INPUT__MIN_SIZE_TEST=45), False)(record)
    assert "instances" not in test_out and "annotations" not in test_out
    assert tuple(test_out["image"].shape) == (3, 45, 60)
    no_mask = DatasetMapper(_cfg(MODEL__MASK_ON=False, INPUT__MIN_SIZE_TRAIN=[90]), True)
    assert not no_mask(record)["instances"].has("gt_masks")


def test_bad_images_fail_naming_the_file(square_dataset, tmp_path):
    mapper = DatasetMapper(_cfg(INPUT__MIN_SIZE_TRAIN=[90]), True)
    with pytest.raises(SizeMismatchError, match="square.png"):
        mapper({**square_dataset, "height": 91})
    with pytest.raises(FileNotFoundError, match="gone.png"):
        mapper({**square_dataset, "file_name": str(tmp_path / "gone.png")})
    with pytest.raises(ValueError, match=r"image_id 5.*'bbox'"):
        mapper({**square_dataset, "annotations": [{"category_id": 0, "bbox_mode": 1}]})


def test_dsb2018_bitmask_training_sample(shared_data, fresh_name):
    name = fresh_name()
    register_coco_instances(
        name, {}, shared_data / "dsb2018/annotations/val.json", shared_data / "dsb2018/images"
    )
    from masktron.data import DatasetCatalog

    record = DatasetCatalog.get(name)[0]
    out = DatasetMapper(_cfg(INPUT__MASK_FORMAT="bitmask", INPUT__MIN_SIZE_TRAIN=[256]), True)(
        record
    )
    inst = out["instances"]
    assert len(inst) == len(record["annotations"])
    assert inst.gt_masks.tensor.shape[1:] == out["image"].shape[1:]
    assert bool(inst.gt_masks.nonempty().all())

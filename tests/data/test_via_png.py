"""VIA JSON (balloon) and per-instance PNG folders: counts, geometry and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from masktron.data import DatasetCatalog, MetadataCatalog, register_via_instances
from masktron.data.datasets import (
    DatasetFormatError,
    load_png_mask_folder,
    load_via_json,
    register_png_mask_instances,
)
from masktron.structures import BoxMode


@pytest.mark.parametrize("split", ["train", "val"])
def test_balloon_counts_and_geometry(shared_data, fresh_name, split):
    folder = shared_data / "balloon" / split
    raw = json.loads((folder / "via_region_data.json").read_text())
    name = fresh_name()
    register_via_instances(
        name, {"thing_classes": ["balloon"]}, folder / "via_region_data.json", folder
    )
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == len(raw)
    assert sum(len(d["annotations"]) for d in dicts) == sum(len(v["regions"]) for v in raw.values())
    assert MetadataCatalog.get(name).thing_classes == ["balloon"]

    entry = next(iter(raw.values()))
    shape = next(iter(entry["regions"].values()))["shape_attributes"]
    record = dicts[0]
    with Image.open(folder / entry["filename"]) as im:
        assert (record["width"], record["height"]) == im.size
    obj = record["annotations"][0]
    px, py = shape["all_points_x"], shape["all_points_y"]
    assert obj["bbox"] == [min(px), min(py), max(px), max(py)]
    assert obj["bbox_mode"] == BoxMode.XYXY_ABS and obj["category_id"] == 0
    expected = [v for x, y in zip(px, py) for v in (x + 0.5, y + 0.5)]
    assert obj["segmentation"] == [expected]


def _via(tmp_path: Path, regions, name: str = "a.png") -> Path:
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / name)
    path = tmp_path / "via.json"
    path.write_text(json.dumps({f"{name}123": {"filename": name, "regions": regions}}))
    return path


def test_via_shapes_classes_and_list_regions(tmp_path, fresh_name):
    regions = [
        {
            "shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 5, "height": 4},
            "region_attributes": {"kind": "cat"},
        },
        {
            "shape_attributes": {"name": "circle", "cx": 10, "cy": 10, "r": 3},
            "region_attributes": {"kind": {"dog": True, "cat": False}},
        },
    ]
    path = _via(tmp_path, regions)
    name = fresh_name()
    (record,) = load_via_json(path, tmp_path, name, class_attribute="kind")
    assert MetadataCatalog.get(name).thing_classes == ["cat", "dog"]
    rect, circle = record["annotations"]
    assert rect["bbox"] == [1, 2, 6, 6] and rect["category_id"] == 0
    assert circle["category_id"] == 1
    assert circle["bbox"] == pytest.approx([7, 7, 13, 13])
    assert (record["height"], record["width"]) == (20, 30)


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ({"name": "polygon", "all_points_x": [1, 2, 3]}, "missing field 'all_points_y'"),
        (
            {"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]},
            "all_points_x has 3 values but all_points_y has 2",
        ),
        (
            {"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1, 2]},
            "a polygon needs 3\\+ points",
        ),
        ({"name": "point", "cx": 1, "cy": 2}, "region shape 'point' is not supported"),
    ],
)
def test_via_errors_name_file_image_region(tmp_path, shape, pattern):
    path = _via(tmp_path, {"0": {"shape_attributes": shape, "region_attributes": {}}})
    with pytest.raises(DatasetFormatError, match=f"via.json: a.png region 0: {pattern}"):
        load_via_json(path, tmp_path)


def test_via_missing_image(tmp_path):
    path = _via(tmp_path, [])
    (tmp_path / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="a.png"):
        load_via_json(path, tmp_path)


@pytest.fixture
def dsb_folder(shared_data, tmp_path) -> tuple[Path, dict]:
    """Three DSB2018 images re-laid out as `<id>/images/<id>.png` + `<id>/masks/<k>.png`."""
    raw = json.loads((shared_data / "dsb2018/annotations/val.json").read_text())
    images = raw["images"][:3]
    truth: dict = {}
    for img in images:
        stem = Path(img["file_name"]).stem
        (tmp_path / stem / "images").mkdir(parents=True)
        (tmp_path / stem / "masks").mkdir()
        source = shared_data / "dsb2018/images" / img["file_name"]
        (tmp_path / stem / "images" / f"{stem}.png").write_bytes(source.read_bytes())
        annos = [a for a in raw["annotations"] if a["image_id"] == img["id"]]
        truth[stem] = [mask_util.decode(a["segmentation"]) for a in annos]
        for k, mask in enumerate(truth[stem]):
            Image.fromarray(mask * 255).save(tmp_path / stem / "masks" / f"{k:04d}.png")
    return tmp_path, truth


def test_png_masks_dsb2018_layout(dsb_folder, fresh_name):
    root, truth = dsb_folder
    name = fresh_name()
    register_png_mask_instances(name, {"thing_classes": ["nucleus"]}, root)
    dicts = DatasetCatalog.get(name)
    assert [Path(d["file_name"]).stem for d in dicts] == sorted(truth)
    for d in dicts:
        expected = truth[Path(d["file_name"]).stem]
        assert len(d["annotations"]) == len(expected)
        for anno, mask in zip(d["annotations"], expected):
            np.testing.assert_array_equal(mask_util.decode(anno["segmentation"]), mask)
            ys, xs = np.nonzero(mask)
            x0, y0 = xs.min(), ys.min()
            assert anno["bbox"] == [x0, y0, xs.max() + 1 - x0, ys.max() + 1 - y0]
            assert anno["bbox_mode"] == BoxMode.XYWH_ABS and anno["category_id"] == 0


def test_png_masks_images_masks_layout_with_classes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks" / "s1").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "images" / "s1.jpg")
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "images" / "s2.png")
    square = np.zeros((8, 10), np.uint8)
    square[2:5, 3:7] = 1
    Image.fromarray(square).save(tmp_path / "masks" / "s1" / "0_dog.png")
    Image.fromarray(square * 0).save(tmp_path / "masks" / "s1" / "1_cat.png")  # empty: skipped
    Image.fromarray(np.dstack([square * 9] * 3)).save(tmp_path / "masks" / "s1" / "2_cat.png")
    s1, s2 = load_png_mask_folder(tmp_path, "images_masks", ["cat", "dog"])
    assert [a["category_id"] for a in s1["annotations"]] == [1, 0]
    assert s1["annotations"][0]["bbox"] == [3, 2, 4, 3]
    assert s2["annotations"] == [] and (s2["height"], s2["width"]) == (6, 6)
    Image.fromarray(square).save(tmp_path / "masks" / "s1" / "3_bird.png")
    with pytest.raises(DatasetFormatError, match="3_bird.png: .*_<class>.png"):
        load_png_mask_folder(tmp_path, "images_masks", ["cat", "dog"])
    (tmp_path / "masks" / "s1" / "3_bird.png").unlink()
    Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / "masks" / "s1" / "4_cat.png")
    with pytest.raises(
        DatasetFormatError, match=r"4_cat.png: mask is 4x4 \(WxH\) but its image .*s1.jpg is 10x8"
    ):
        load_png_mask_folder(tmp_path, "images_masks", ["cat", "dog"])
    with pytest.raises(ValueError, match="layout"):
        load_png_mask_folder(tmp_path, "flat")

"""COCO JSON reading and registration: counts from the raw files, id mapping, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest

from masktron.data import DatasetCatalog, MetadataCatalog, register_coco_instances
from masktron.data.datasets import (
    DatasetFormatError,
    convert_to_coco_json,
    load_coco_json,
)
from masktron.structures import BoxMode


def _valid_polygons(segm) -> list:
    return [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]


@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_sample_counts(shared_data, fresh_name, split):
    json_file = shared_data / "coco_sample" / "annotations" / f"instances_{split}.json"
    raw = json.loads(json_file.read_text())
    name = fresh_name()
    register_coco_instances(name, {}, json_file, shared_data / "coco_sample" / "images" / split)
    dicts = DatasetCatalog.get(name)

    # Expected numbers, computed from the raw JSON.
    image_ids = sorted(img["id"] for img in raw["images"])
    kept = [
        a
        for a in raw["annotations"]
        if not isinstance(a["segmentation"], list) or _valid_polygons(a["segmentation"])
    ]
    assert [d["image_id"] for d in dicts] == image_ids  # sorted, images without annos kept
    assert sum(len(d["annotations"]) for d in dicts) == len(kept)
    crowd = sum(a["iscrowd"] for a in kept)
    assert sum(a.get("iscrowd", 0) for d in dicts for a in d["annotations"]) == crowd
    without = {i for i in image_ids} - {a["image_id"] for a in raw["annotations"]}
    assert {d["image_id"] for d in dicts if not d["annotations"]} == without

    meta = MetadataCatalog.get(name)
    cat_ids = sorted(c["id"] for c in raw["categories"])
    assert meta.thing_dataset_id_to_contiguous_id == {c: i for i, c in enumerate(cat_ids)}
    names = {c["id"]: c["name"] for c in raw["categories"]}
    assert meta.thing_classes == [names[c] for c in cat_ids]
    assert meta.evaluator_type == "coco" and meta.json_file == json_file

    by_id = {a["id"]: a for a in raw["annotations"]}
    record = next(d for d in dicts if d["annotations"])
    raw_img = next(i for i in raw["images"] if i["id"] == record["image_id"])
    assert record["file_name"].endswith(raw_img["file_name"])
    assert (record["height"], record["width"]) == (raw_img["height"], raw_img["width"])
    for obj in record["annotations"]:
        assert obj["bbox_mode"] == BoxMode.XYWH_ABS
        raw_anno = next(
            by_id[k]
            for k in by_id
            if by_id[k]["image_id"] == record["image_id"] and by_id[k]["bbox"] == obj["bbox"]
        )
        assert obj["category_id"] == cat_ids.index(raw_anno["category_id"])


def test_crowd_rle_compressed_and_decodes_to_the_same_mask(shared_data):
    json_file = shared_data / "coco_sample" / "annotations" / "instances_train2017.json"
    raw = json.loads(json_file.read_text())
    crowd = [a for a in raw["annotations"] if a["iscrowd"]]
    assert crowd, "the sample has crowd annotations"
    dicts = load_coco_json(json_file, shared_data / "coco_sample" / "images" / "train2017")
    loaded = {
        (d["image_id"], tuple(a["bbox"])): a
        for d in dicts
        for a in d["annotations"]
        if a["iscrowd"]
    }
    assert len(loaded) == len(crowd)
    for raw_anno in crowd:
        obj = loaded[(raw_anno["image_id"], tuple(raw_anno["bbox"]))]
        assert isinstance(obj["segmentation"]["counts"], str)
        h, w = raw_anno["segmentation"]["size"]
        reference = mask_util.decode(mask_util.frPyObjects(raw_anno["segmentation"], h, w))
        np.testing.assert_array_equal(mask_util.decode(obj["segmentation"]), reference)
        assert obj["category_id"] == raw_anno["category_id"]  # no dataset name: ids unmapped


def test_dsb2018_registers_with_detectron2_call(shared_data, fresh_name):
    name = fresh_name()
    register_coco_instances(
        name, {}, shared_data / "dsb2018/annotations/train.json", shared_data / "dsb2018/images"
    )
    raw = json.loads((shared_data / "dsb2018/annotations/train.json").read_text())
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == len(raw["images"])
    assert sum(len(d["annotations"]) for d in dicts) == len(raw["annotations"])
    assert MetadataCatalog.get(name).thing_classes == [c["name"] for c in raw["categories"]]
    assert all(Path(d["file_name"]).is_file() for d in dicts[:20])


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _minimal(**anno_overrides) -> dict:
    anno = {
        "id": 7,
        "image_id": 1,
        "category_id": 3,
        "bbox": [1, 2, 3, 4],
        "iscrowd": 0,
        "segmentation": [[1, 2, 4, 2, 4, 6]],
    }
    anno.update(anno_overrides)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 12}],
        "annotations": [anno],
        "categories": [{"id": 3, "name": "thing"}],
    }


def test_minimal_file_and_polygon_filtering(tmp_path, fresh_name):
    data = _minimal(segmentation=[[1, 2, 4, 2, 4, 6], [1, 2, 3], [0, 0, 1, 1]])
    data["annotations"].append({**data["annotations"][0], "id": 8, "segmentation": [[1, 2, 3, 4]]})
    dicts = load_coco_json(_write(tmp_path, data), tmp_path, fresh_name())
    (obj,) = dicts[0]["annotations"]  # id 8 has no valid polygon: dropped
    assert obj["segmentation"] == [[1, 2, 4, 2, 4, 6]] and obj["category_id"] == 0


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ('{"images": [', r"ann.json: not valid JSON \(line 1"),
        ({"annotations": []}, r"ann.json: missing field 'images'"),
        (
            {**_minimal(), "images": [{"id": 1, "height": 10, "width": 12}]},
            r"images\[0\] \(id 1\): missing field 'file_name'",
        ),
        (_minimal(bbox=[1, 2, 3]), r"annotations\[0\] \(id 7\) of image 1: field 'bbox'"),
        (_minimal(bbox=[1, 2, "x", 4]), r"\(id 7\) of image 1: field 'bbox'"),
        (_minimal(category_id=99), r"\(id 7\) of image 1: field 'category_id' is 99"),
        (
            _minimal(segmentation=[[1, 2, None, 2, 4, 6]]),
            r"\(id 7\) of image 1: field 'segmentation\[0\]'",
        ),
        (_minimal(segmentation="bad"), r"\(id 7\) of image 1: field 'segmentation' should be"),
        (
            _minimal(segmentation={"size": [5, 5], "counts": "abc"}),
            r"\(id 7\) of image 1: RLE size \[5, 5\] differs from the image's \[10, 12\]",
        ),
        (
            _minimal(segmentation={"size": [10, 12], "counts": [3, 4]}),
            r"uncompressed RLE 'counts' sum to 7, expected 120",
        ),
        (_minimal(ignore=1), r"\(id 7\) of image 1: .*ignore"),
    ],
)
def test_malformed_files_name_file_record_field(tmp_path, fresh_name, data, pattern):
    with pytest.raises(DatasetFormatError, match=pattern):
        load_coco_json(_write(tmp_path, data), tmp_path, fresh_name())


def test_duplicate_ids_and_missing_file(tmp_path, fresh_name):
    data = _minimal()
    data["annotations"].append(dict(data["annotations"][0]))
    with pytest.raises(DatasetFormatError, match="annotation id 7 is not unique"):
        load_coco_json(_write(tmp_path, data), tmp_path, fresh_name())
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco_json(tmp_path / "nope.json", tmp_path)


def test_convert_to_coco_json_round_trip(shared_data, tmp_path, fresh_name):
    json_file = shared_data / "coco_sample" / "annotations" / "instances_val2017.json"
    name = fresh_name()
    image_root = shared_data / "coco_sample" / "images" / "val2017"
    register_coco_instances(name, {}, json_file, image_root)
    out = tmp_path / "converted.json"
    convert_to_coco_json(name, str(out))
    raw, converted = json.loads(json_file.read_text()), json.loads(out.read_text())
    assert len(converted["images"]) == len(raw["images"])
    assert sorted(c["id"] for c in converted["categories"]) == sorted(
        c["id"] for c in raw["categories"]
    )
    again = load_coco_json(out, "", fresh_name())
    original = DatasetCatalog.get(name)
    for a, b in zip(original, again):
        assert len(a["annotations"]) == len(b["annotations"])
        for x, y in zip(a["annotations"], b["annotations"]):
            np.testing.assert_allclose(x["bbox"], y["bbox"], atol=1e-3)
            assert x["category_id"] == y["category_id"] and x["iscrowd"] == y["iscrowd"]
    areas = {a["id"]: a["area"] for a in raw["annotations"]}
    polygon_areas = [a["area"] for a in converted["annotations"] if not a["iscrowd"]]
    raw_polygon = [
        areas[a["id"]] for a in raw["annotations"] if not a["iscrowd"] and a["segmentation"]
    ]
    # Shoelace areas vs COCO's rasterised areas agree to a few percent in total.
    assert sum(polygon_areas) == pytest.approx(sum(raw_polygon), rel=0.05)

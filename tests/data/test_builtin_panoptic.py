"""Built-in metadata and registrations, and the two COCO panoptic layouts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from masktron.config import get_cfg
from masktron.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from masktron.data.builtin_meta import COCO_CATEGORIES, get_builtin_metadata
from masktron.data.datasets import (
    register_coco_panoptic,
    register_coco_panoptic_separated,
    separate_coco_semantic_from_panoptic,
)
from masktron.data.datasets.coco_panoptic import rgb2id


def test_coco_categories_match_panopticapi_list(shared_data):
    reference = json.loads(
        (shared_data / "panoptic_sample/panoptic_coco_categories.json").read_text()
    )
    assert len(COCO_CATEGORIES) == len(reference) == 133
    for ours, ref in zip(COCO_CATEGORIES, reference):
        assert (ours["id"], ours["name"], ours["isthing"], list(ours["color"])) == (
            ref["id"],
            ref["name"],
            ref["isthing"],
            ref["color"],
        )


@pytest.mark.parametrize("name", ["coco_2017_train", "coco_2017_val"])
def test_coco_2017_metadata_registered(name, shared_data):
    meta = MetadataCatalog.get(name)
    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    assert len(meta.thing_classes) == 80 and meta.thing_classes[0] == "person"
    assert meta.thing_classes == [c["name"] for c in things]
    assert meta.thing_colors[0] == [220, 20, 60]
    assert meta.thing_dataset_id_to_contiguous_id[1] == 0
    assert meta.thing_dataset_id_to_contiguous_id[90] == 79
    assert meta.evaluator_type == "coco"
    split = name.split("_")[-1] + "2017"
    assert meta.json_file.endswith(f"coco/annotations/instances_{split}.json")
    assert meta.image_root.endswith(f"coco/{split}")
    # The sample JSON's categories are COCO's: same names in the same contiguous order.
    sample = json.loads(
        (shared_data / "coco_sample/annotations/instances_val2017.json").read_text()
    )
    by_id = {c["id"]: c["name"] for c in sample["categories"]}
    assert [by_id[i] for i in sorted(by_id)] == meta.thing_classes


def test_panoptic_metadata():
    sep = MetadataCatalog.get("coco_2017_train_panoptic_separated")
    assert len(sep.stuff_classes) == 54 and sep.stuff_classes[0] == "things"
    assert sep.stuff_dataset_id_to_contiguous_id[0] == 0
    assert sep.stuff_dataset_id_to_contiguous_id[92] == 1  # banner
    assert "wall" in sep.stuff_classes and "wall-other-merged" not in sep.stuff_classes
    assert len(sep.thing_classes) == 80
    std = MetadataCatalog.get("coco_2017_val_panoptic")
    assert len(std.stuff_classes) == len(std.thing_classes) == 133
    assert std.label_divisor == 1000 and std.evaluator_type == "coco_panoptic_seg"
    assert "coco_2017_val_panoptic_stuffonly" in DatasetCatalog
    with pytest.raises(KeyError, match="coco_panoptic_standard"):
        get_builtin_metadata("lvis")


def test_builtin_missing_files_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default root "datasets" is relative: now absent
    with pytest.raises(FileNotFoundError, match=r"coco_2017_val.*instances_val2017.json.*MASKTRON"):
        DatasetCatalog.get("coco_2017_val")


@pytest.mark.skipif(
    bool(os.environ.get("MASKTRON_DATASETS") or os.environ.get("DETECTRON2_DATASETS")),
    reason="the built-in root is set by the environment",
)
def test_builtin_dsb2018_and_balloon_under_dataset_root(shared_data, tmp_path, monkeypatch):
    (tmp_path / "datasets").symlink_to(shared_data)
    monkeypatch.chdir(tmp_path)
    raw = json.loads((shared_data / "dsb2018/annotations/val.json").read_text())
    dicts = DatasetCatalog.get("dsb2018_val")
    assert sum(len(d["annotations"]) for d in dicts) == len(raw["annotations"])
    balloon = json.loads((shared_data / "balloon/val/via_region_data.json").read_text())
    assert len(DatasetCatalog.get("balloon_val")) == len(balloon)
    assert MetadataCatalog.get("balloon_val").thing_classes == ["balloon"]


def test_register_coco_panoptic_standard(shared_data, fresh_name):
    sample = shared_data / "panoptic_sample" / "sample_data"
    raw = json.loads((sample / "panoptic_examples.json").read_text())
    name = fresh_name()
    register_coco_panoptic(
        name,
        get_builtin_metadata("coco_panoptic_standard"),
        str(sample / "input_images"),
        str(sample / "panoptic_examples"),
        str(sample / "panoptic_examples.json"),
    )
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == len(raw["annotations"])
    isthing = {c["id"]: bool(c["isthing"]) for c in raw["categories"]}
    index = {c["id"]: i for i, c in enumerate(COCO_CATEGORIES)}
    for d, ann in zip(dicts, raw["annotations"]):
        assert d["image_id"] == ann["image_id"] and os.path.isfile(d["file_name"])
        assert len(d["segments_info"]) == len(ann["segments_info"])
        for seg, raw_seg in zip(d["segments_info"], ann["segments_info"]):
            assert seg["isthing"] == isthing[raw_seg["category_id"]]
            assert seg["category_id"] == index[raw_seg["category_id"]]
        png = rgb2id(np.asarray(Image.open(d["pan_seg_file_name"]).convert("RGB")))
        assert {s["id"] for s in ann["segments_info"]} <= set(np.unique(png).tolist())


def test_register_coco_panoptic_separated(shared_data, tmp_path, fresh_name):
    sample = shared_data / "panoptic_sample" / "sample_data"
    raw = json.loads((sample / "panoptic_examples.json").read_text())
    sem_root = tmp_path / "stuff"
    separate_coco_semantic_from_panoptic(
        str(sample / "panoptic_examples.json"),
        str(sample / "panoptic_examples"),
        str(sem_root),
        COCO_CATEGORIES,
    )
    # Check the label maps against the panoptic PNGs, segment by segment.
    stuff_index = {
        c["id"]: i + 1 for i, c in enumerate(c for c in COCO_CATEGORIES if not c["isthing"])
    }
    isthing = {c["id"]: c["isthing"] for c in COCO_CATEGORIES}
    for ann in raw["annotations"]:
        sem = np.asarray(Image.open(sem_root / ann["file_name"]))
        ids = rgb2id(np.asarray(Image.open(sample / "panoptic_examples" / ann["file_name"])))
        for seg in ann["segments_info"]:
            expected = 0 if isthing[seg["category_id"]] else stuff_index[seg["category_id"]]
            assert (sem[ids == seg["id"]] == expected).all()
        assert (sem[ids == 0] == 255).all()

    # Thing instances come from a COCO instances file (here: the thing part of the sample).
    detection = json.loads((sample / "panoptic_coco_detection_format.json").read_text())
    thing_ids = {c["id"] for c in COCO_CATEGORIES if c["isthing"]}
    detection["categories"] = [c for c in detection["categories"] if c["id"] in thing_ids]
    detection["annotations"] = [
        a for a in detection["annotations"] if a["category_id"] in thing_ids
    ]
    instances_json = tmp_path / "instances.json"
    instances_json.write_text(json.dumps(detection))

    name = fresh_name()
    register_coco_panoptic_separated(
        name,
        get_builtin_metadata("coco_panoptic_separated"),
        str(sample / "input_images"),
        str(sample / "panoptic_examples"),
        str(sample / "panoptic_examples.json"),
        str(sem_root),
        str(instances_json),
    )
    dicts = DatasetCatalog.get(name + "_separated")
    assert len(dicts) == len(raw["annotations"])
    assert sum(len(d["annotations"]) for d in dicts) == len(detection["annotations"])
    assert all("sem_seg_file_name" in d for d in dicts)
    assert len(DatasetCatalog.get(name + "_stuffonly")) == len(dicts)

    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = [200]
    out = DatasetMapper(cfg, True)(dicts[0])
    assert out["sem_seg"].dtype.is_floating_point is False
    assert tuple(out["sem_seg"].shape) == tuple(out["image"].shape[1:])
    assert set(np.unique(out["sem_seg"].numpy())) <= set(range(54)) | {255}

"""`masktron train --classes / --class-attribute` (issue 17, friction 4): VIA and PNG-mask data
get their class names from the command line, and the run records them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from masktron.cli import train as train_cli
from masktron.cli.main import CommandError, build_parser
from masktron.config import get_cfg
from masktron.data import DatasetCatalog
from masktron.data.run_datasets import forget_registered, register_dataset_spec
from masktron.engine.run_setup import record_dataset_classes


def _specs(argv):
    args = build_parser().parse_args(["train", "--config", "c.yaml", *argv])
    return train_cli._dataset_specs(args)


@pytest.fixture
def via(tmp_path):
    """Two 8x8 images with rectangle regions whose attribute 'kind' names the class."""
    entries = {}
    for k, kind in enumerate(["pear", "apple"]):
        name = f"im{k}.png"
        Image.new("RGB", (8, 8)).save(tmp_path / name)
        region = {"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 4, "height": 3},
                  "region_attributes": {"kind": kind}}  # fmt: skip
        entries[name] = {"filename": name, "regions": [region]}
    (tmp_path / "via.json").write_text(json.dumps(entries))
    return tmp_path


def test_via_class_attribute_and_names(via):
    argv = ["--via-dataset", "fruit", str(via / "via.json"), str(via),
            "--class-attribute", "fruit", "kind", "--classes", "fruit", "apple,pear"]  # fmt: skip
    (spec,) = _specs(argv)
    assert spec["class_attribute"] == "kind" and spec["classes"] == ["apple", "pear"]
    register_dataset_spec(spec)
    try:
        dicts = DatasetCatalog.get("fruit")
        assert [d["annotations"][0]["category_id"] for d in dicts] == [1, 0]  # pear, apple
        cfg = get_cfg()
        cfg.DATASETS.TRAIN = ["fruit"]
        record_dataset_classes(cfg)
        assert cfg.DATASETS.THING_CLASSES == ["apple", "pear"]
        assert cfg.DATASETS.THING_DATASET_IDS == [0, 1]
    finally:
        forget_registered("fruit")
    # Without --classes the names found in the file are used, sorted.
    (spec,) = _specs(argv[:7])
    register_dataset_spec(spec)
    try:
        cfg = get_cfg()
        cfg.DATASETS.TRAIN = ["fruit"]
        record_dataset_classes(cfg)
        assert cfg.DATASETS.THING_CLASSES == ["apple", "pear"]
    finally:
        forget_registered("fruit")


def test_png_masks_take_class_names(tmp_path):
    sample = tmp_path / "s1"
    (sample / "images").mkdir(parents=True)
    (sample / "masks").mkdir()
    Image.new("RGB", (6, 5)).save(sample / "images" / "s1.png")
    for name, rows in (("1_cell.png", slice(0, 2)), ("2_debris.png", slice(3, 5))):
        mask = np.zeros((5, 6), np.uint8)
        mask[rows, 1:4] = 255
        Image.fromarray(mask).save(sample / "masks" / name)
    (spec,) = _specs(["--png-dataset", "cells", str(tmp_path), "--classes", "cells", "cell,debris"])
    register_dataset_spec(spec)
    try:
        (record,) = DatasetCatalog.get("cells")
        assert sorted(a["category_id"] for a in record["annotations"]) == [0, 1]
    finally:
        forget_registered("cells")


def test_class_options_must_name_a_dataset_option(via):
    with pytest.raises(CommandError, match="--classes other"):
        _specs(["--via-dataset", "fruit", str(via / "via.json"), str(via),
                "--classes", "other", "a,b"])  # fmt: skip
    with pytest.raises(CommandError, match="class attribute is for VIA"):
        _specs(["--png-dataset", "p", str(via), "--class-attribute", "p", "kind"])


@pytest.mark.parametrize("first", [True, False])
def test_coco_classes_are_read_from_either_end_of_a_big_file(tmp_path, monkeypatch, first):
    from masktron.data import run_datasets

    monkeypatch.setattr(run_datasets, "_END_BYTES", 200)  # the images list is bigger than this
    categories = [{"id": 9, "name": "b"}, {"id": 3, "name": "a"}]
    images = [{"id": i, "file_name": f"{i:05d}.jpg", "height": 4, "width": 4} for i in range(50)]
    data = {"categories": categories} if first else {}
    data |= {"images": images, "annotations": [], "note": '"categories": [1]'}
    if not first:
        data["categories"] = categories
    path = tmp_path / "big.json"
    path.write_text(json.dumps(data))
    assert run_datasets._coco_categories(str(path)) == (["a", "b"], [3, 9])
    monkeypatch.setattr(run_datasets, "_END_BYTES", 10)  # not found near an end: read it whole
    assert run_datasets._coco_categories(str(path)) == (["a", "b"], [3, 9])

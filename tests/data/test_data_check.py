"""Checking a training set before iteration 0: every problem reported at once, --skip-bad."""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from masktron.cli.data_check import check_training_data
from masktron.cli.main import CommandError, main
from masktron.data import DatasetCatalog, register_coco_instances
from masktron.data.check import check_dataset, drop_bad
from masktron.data.datasets.coco import load_coco_json
from masktron.data.datasets.format_utils import DatasetFormatError
from masktron.evaluation.rle import check_compressed_rles

SQUARE = [2.0, 2.0, 10.0, 2.0, 10.0, 10.0, 2.0, 10.0]


def _rle(h=20, w=30):
    mask = np.zeros((h, w), np.uint8, order="F")
    mask[2:8, 3:9] = 1
    rle = mask_util.encode(mask)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def _write_coco(tmp_path, annotations, images=None):
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    Image.new("RGB", (30, 20)).save(root / "a.png")
    Image.new("RGB", (30, 20)).save(root / "b.png")
    images = images or [
        {"id": 1, "file_name": "a.png", "height": 20, "width": 30},
        {"id": 2, "file_name": "b.png", "height": 25, "width": 30},  # the file is 30x20
        {"id": 3, "file_name": "missing.png", "height": 20, "width": 30},
    ]
    for i, a in enumerate(annotations, start=1):
        a.setdefault("id", i)
        a.setdefault("iscrowd", 0)
        a.setdefault("category_id", 1)
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, root


def _problem_set(tmp_path):
    path, root = _write_coco(
        tmp_path,
        [
            {"image_id": 1, "bbox": [2, 2, 8, 8], "segmentation": [SQUARE]},  # good
            {"image_id": 1, "bbox": [2, 2, 0, 8], "segmentation": [SQUARE]},  # zero width
            {"image_id": 1, "bbox": [50, 50, 5, 5], "segmentation": [SQUARE]},  # outside
            {"image_id": 1, "bbox": [2, 2, 8, 8], "segmentation": _rle(), "category_id": 3},
            {"image_id": 2, "bbox": [2, 2, 8, 8], "segmentation": [SQUARE]},
            {"image_id": 3, "bbox": [2, 2, 8, 8], "segmentation": [SQUARE]},
        ],
    )
    return load_coco_json(path, root, "data_check_problems"), path, root


def test_every_problem_is_reported_at_once(tmp_path):
    dicts, _, root = _problem_set(tmp_path)
    dicts[0]["annotations"][0]["segmentation"] = [[1.0, 2.0, 3.0]]  # odd count
    report = check_dataset(dicts, num_classes=2, progress=False)
    found = {
        (p.file_name.rsplit("/", 1)[-1], p.annotation, p.fatal): p.reason for p in report.problems
    }
    assert "even number" in found[("a.png", 0, True)]
    assert "zero or negative size" in found[("a.png", 1, False)]
    assert "outside the 30x20 image" in found[("a.png", 2, False)]
    assert "category_id 2 is not in 0..1" in found[("a.png", 3, True)]
    assert found[("b.png", None, True)] == "the file is 30x20, the dataset says 30x25"
    assert found[("missing.png", None, True)] == "image file not found"
    assert len(report.errors) == 4 and len(report.warnings) == 2
    assert "4 error(s), 2 warning(s) in 3 images / 6 annotations" in report.summary()

    kept, images, annotations = drop_bad(dicts, report)
    assert (images, annotations) == (2, 4)
    assert [len(d["annotations"]) for d in kept] == [0]  # b and missing dropped


def test_truncated_or_corrupt_image_found_when_decoding(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGB", (30, 20), (10, 200, 30)).save(path)
    path.write_bytes(path.read_bytes()[:-30])  # cut the image data short
    record = {"file_name": str(path), "height": 20, "width": 30, "annotations": []}
    assert check_dataset([record], progress=False).problems == []  # the header is fine
    (problem,) = check_dataset([record], decode=True, progress=False).problems
    assert problem.annotation is None and problem.fatal


def _too_long_counts():  # the runs of a 40x30 mask: more pixels than the 20x30 image has
    return mask_util.encode(np.zeros((40, 30), np.uint8, order="F"))["counts"].decode("ascii")


@pytest.mark.parametrize(
    "counts, reason",
    [
        ("0é1", "non-ASCII characters"),
        ("e", "corrupt or cut short"),  # a run whose continuation bit is set at the end
        ("0 1", "corrupt or cut short"),  # a character outside the format's alphabet
        (_too_long_counts(), "corrupt or cut short"),
    ],
)
def test_bad_rle_counts_are_refused_at_load_naming_file_and_annotation(tmp_path, counts, reason):
    anno = {
        "image_id": 1,
        "bbox": [0, 0, 5, 5],
        "segmentation": {"size": [20, 30], "counts": counts},
    }
    path, root = _write_coco(
        tmp_path, [anno], images=[{"id": 1, "file_name": "a.png", "height": 20, "width": 30}]
    )
    with pytest.raises(DatasetFormatError) as err:
        load_coco_json(path, root)
    assert f"{path}: annotations[0] (id 1) of image 1" in str(err.value)
    assert reason in str(err.value)
    if counts.isascii():  # evaluation refuses the same RLE: training and evaluation agree
        assert check_compressed_rles([{"size": [20, 30], "counts": counts}], [(20, 30)])[0]


def test_training_stops_before_the_model_is_built_or_skips_bad(tmp_path, caplog):
    from masktron.config import get_cfg

    _, path, root = _problem_set(tmp_path)
    name = "data_check_train_set"
    register_coco_instances(name, {}, str(path), str(root))
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = [name]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    with pytest.raises(CommandError) as err:
        check_training_data(cfg, skip_bad=False)
    message = str(err.value)
    assert "3 error(s), 2 warning(s)" in message and "--skip-bad" in message
    assert "missing.png: image file not found" in message
    check_training_data(cfg, skip_bad=True)
    assert "dropped 2 image(s) and 3 annotation(s)" in caplog.text
    assert len(DatasetCatalog.get(name)) == 1
    DatasetCatalog.remove(name)


def test_train_check_data_cli_reports_all_and_exits_1(tmp_path, capsys):
    _, path, root = _problem_set(tmp_path)
    code = main([
        "train", "--config", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
        "--coco-dataset", "data_check_cli", str(path), str(root), "--check-data",
        "DATASETS.TRAIN", "('data_check_cli',)", "MODEL.ROI_HEADS.NUM_CLASSES", "2",
        "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "out"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "data_check_cli: 3 error(s), 2 warning(s)" in out
    assert out.count("error: ") == 3 and out.count("warning: ") == 2
    assert not (tmp_path / "out" / "last_checkpoint").exists()

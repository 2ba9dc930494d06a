"""`masktron predict` on real photos with Detectron2-format weights: outputs, exit codes."""

import json
import shutil

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from masktron.cli.main import main
from masktron.data import MetadataCatalog

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
FAST = ["--opts", "INPUT.MIN_SIZE_TEST", "256", "INPUT.MAX_SIZE_TEST", "400"]


def test_predict_writes_drawing_and_coco_results(mask_rcnn_zoo_pkl, shared_dir, tmp_path, capsys):
    photo = shared_dir / "data" / "images" / "coins.png"
    out = tmp_path / "out"
    args = ["predict", str(photo), "--config", CONFIG, "--weights", str(mask_rcnn_zoo_pkl)]
    code = main([*args, "--out", str(out), "--conf", "0.05", "--device", "cpu", *FAST])
    assert code == 0
    drawn = np.asarray(Image.open(out / "coins.png"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)
    results = json.loads((out / "results.json").read_text())
    assert results, "fixture weights give detections at score 0.05"
    # category ids are COCO's own (1..90 with gaps), mapped back from the contiguous classes
    coco_ids = set(MetadataCatalog.get("coco_2017_val").thing_dataset_id_to_contiguous_id)
    assert all(r["category_id"] in coco_ids for r in results)
    for r in results[:5]:
        assert r["file_name"] == "coins.png" and r["image_id"] == 1 and r["score"] >= 0.05
        mask = mask_util.decode(r["segmentation"])
        assert mask.shape == original.shape[:2]
        x, y, w, h = r["bbox"]
        assert 0 <= x and 0 <= y and x + w <= original.shape[1] + 1e-3
    assert "wrote 1 image" in capsys.readouterr().out


def test_predict_folder_skips_a_broken_image_and_exits_1(mask_rcnn_zoo_pkl, shared_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(shared_dir / "data" / "images" / "coins.png", folder / "a.png")
    (folder / "b.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    args = ["predict", str(folder), "--config", CONFIG, "--weights", str(mask_rcnn_zoo_pkl)]
    assert main([*args, "--out", str(out), "--device", "cpu", *FAST]) == 1
    assert (out / "a.png").exists() and (out / "results.json").exists()


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0 and "--weights" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["predict", "x.jpg"])  # --config and --out are required
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["predict", "x.jpg", "--config", CONFIG, "--out", "o", "--conf", "high"])
    assert e.value.code == 2


def test_failed_runs_exit_1_with_a_message(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.jpg"), "--config", CONFIG, "--out", "o"]) == 1
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8)).save(photo)
    assert main(["predict", str(photo), "--config", "nope.yaml", "--out", str(tmp_path)]) == 1
    assert "not in the model zoo" in capsys.readouterr().err
    code = main(["predict", str(photo), "--config", CONFIG, "--out", str(tmp_path), "--opts", "X"])
    assert code == 1 and "KEY VALUE" in capsys.readouterr().err


def test_results_use_the_datasets_category_ids(tmp_path):
    import torch

    from masktron.cli.predict import _write_outputs
    from masktron.structures import Boxes, Instances

    inst = Instances(
        (20, 30),
        pred_boxes=Boxes(torch.tensor([[1.0, 2, 10, 12]] * 3)),
        scores=torch.tensor([0.9, 0.8, 0.7]),
        pred_classes=torch.tensor([0, 11, 79]),
        pred_masks=torch.zeros(3, 20, 30, dtype=torch.bool),
    )
    results: list = []
    metadata = MetadataCatalog.get("coco_2017_val")
    rgb = np.zeros((20, 30, 3), np.uint8)
    _write_outputs({"instances": inst}, rgb, metadata, str(tmp_path), "x.png", 7, results, [])
    # contiguous 0 -> person (1), 11 -> stop sign (13), 79 -> toothbrush (90)
    assert [r["category_id"] for r in results] == [1, 13, 90]
    assert {r["image_id"] for r in results} == {7}
    assert (tmp_path / "x.png").exists()


def test_predict_panoptic_writes_id_map_segments_and_semantic_map(zoo_pkl, shared_dir, tmp_path):
    from masktron.evaluation.panoptic_pq import read_panoptic_png

    photo = shared_dir / "data" / "images" / "coins.png"
    out = tmp_path / "out"
    config = "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml"
    weights = str(zoo_pkl("panoptic_fpn_R_50_3x"))
    args = ["predict", str(photo), "--config", config, "--weights", weights, "--out", str(out)]
    assert main([*args, "--device", "cpu", *FAST]) == 0
    height, width = np.asarray(Image.open(photo)).shape[:2]
    ids = read_panoptic_png(str(out / "coins_panoptic.png"))
    (record,) = json.loads((out / "panoptic.json").read_text())["annotations"]
    assert ids.shape == (height, width) and record["file_name"] == "coins_panoptic.png"
    segments = {s["id"]: s for s in record["segments_info"]}
    assert segments and set(np.unique(ids)) - {0} == set(segments)
    meta = MetadataCatalog.get("coco_2017_val_panoptic_separated")
    things = set(meta.thing_dataset_id_to_contiguous_id)
    stuff = set(meta.stuff_dataset_id_to_contiguous_id)
    for s in segments.values():  # COCO panoptic's own category ids
        assert s["category_id"] in (things if s["isthing"] else stuff)
    sem = np.asarray(Image.open(out / "coins_sem_seg.png"))
    assert sem.shape == (height, width) and sem.max() < 54
    assert (out / "coins.png").exists()


def test_predict_with_a_proposal_model_writes_proposals(mask_rcnn_zoo_pkl, shared_dir, tmp_path):
    # rpn_R_50_FPN_1x shares the backbone and RPN names of the Mask R-CNN fixture weights
    photo = shared_dir / "data" / "images" / "coins.png"
    out = tmp_path / "out"
    args = ["predict", str(photo), "--config", "COCO-Detection/rpn_R_50_FPN_1x.yaml"]
    args += ["--weights", str(mask_rcnn_zoo_pkl), "--device", "cpu", "--out", str(out), *FAST]
    assert main(args) == 0
    assert not (out / "results.json").exists()
    proposals = json.loads((out / "proposals.json").read_text())
    assert 100 < len(proposals) <= 2000  # POST_NMS_TOPK_TEST of the config
    logits = [p["objectness_logit"] for p in proposals]
    assert logits == sorted(logits, reverse=True)
    height, width = np.asarray(Image.open(photo)).shape[:2]
    for p in proposals:
        x, y, w, h = p["bbox"]
        assert p["file_name"] == "coins.png" and w > 0 and h > 0
        assert 0 <= x and 0 <= y and x + w <= width + 1e-3 and y + h <= height + 1e-3
    drawn = np.asarray(Image.open(out / "coins.png").convert("RGB"))
    assert not np.array_equal(drawn, np.asarray(Image.open(photo).convert("RGB")))

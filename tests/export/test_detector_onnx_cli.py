"""The bundled DSB2018 nuclei model through the CLI: `masktron export --format onnx`, then
`masktron predict --onnx` against `masktron predict --config` on the three bundled DSB2018
val images (a subset of dsb2018_val that runs in seconds): the same drawings, the same COCO
results, and a mask AP within 0.2 of PyTorch's."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from masktron.cli.demo import DEMO_IMAGE_DIR
from masktron.cli.main import main
from masktron.evaluation import coco_evaluate

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

CONFIG = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"
CONF = "0.05"  # the AP's operating point; exported below so the graph keeps these scores


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dsb")
    model = tmp / "dsb.onnx"
    opts = ["--opts", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", CONF]
    assert main(["export", "--config", CONFIG, "--format", "onnx", "--out", str(model), *opts]) == 0
    predict = ["predict", DEMO_IMAGE_DIR, "--conf", CONF]
    assert main([*predict, "--config", CONFIG, "--out", str(tmp / "torch")]) == 0
    assert main([*predict, "--onnx", str(model), "--out", str(tmp / "onnx")]) == 0
    return tmp


def _image_ids(shared_dir, names):
    gt = json.loads((shared_dir / "data/dsb2018/annotations/val.json").read_text())
    ids = {}
    for image in gt["images"]:
        for name in names:
            if image["file_name"].startswith(name[len("dsb2018_val_") : -len(".png")]):
                ids[name] = image["id"]
    return gt, ids


def test_onnx_predict_gives_pytorch_mask_ap_and_drawings(outputs, shared_dir):
    names = sorted(n for n in os.listdir(DEMO_IMAGE_DIR) if n.endswith(".png"))
    gt, ids = _image_ids(shared_dir, names)
    assert len(ids) == 3
    ap = {}
    for path in ("torch", "onnx"):
        results = json.loads((outputs / path / "results.json").read_text())
        # both paths write the dataset's own category id (the config records it)
        (nucleus,) = [c["id"] for c in gt["categories"]]
        assert {r["category_id"] for r in results} == {nucleus}
        for r in results:
            r["image_id"] = ids[r["file_name"]]
        ap[path] = coco_evaluate(
            gt, results, "segm", img_ids=list(ids.values()), max_dets=(1, 100, 400)
        )["AP"]
    assert ap["torch"] > 55 and abs(ap["onnx"] - ap["torch"]) <= 0.2, ap
    for name in names:
        ours = np.asarray(Image.open(outputs / "onnx" / name))
        theirs = np.asarray(Image.open(outputs / "torch" / name))
        assert ours.shape == theirs.shape and (ours == theirs).all(axis=-1).mean() >= 0.99


def test_exported_file_carries_the_preprocessing_and_class_names(outputs):
    import onnx

    graph = onnx.load(str(outputs / "dsb.onnx"), load_external_data=False)
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["masktron.resize"])["min_size"] == 800
    assert props["masktron.input_format"] == "BGR"
    assert json.loads(props["masktron.metadata"])["thing_classes"] == ["nucleus"]
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["boxes", "scores", "classes", "masks"]


def test_predict_onnx_refuses_a_conf_below_the_exported_threshold(outputs, capsys):
    args = ["predict", DEMO_IMAGE_DIR, "--onnx", str(outputs / "dsb.onnx"), "--conf", "0.01"]
    assert main([*args, "--out", str(outputs / "low")]) == 1
    assert "below the score threshold 0.05" in capsys.readouterr().err

"""`SemSegEvaluator` on tiny label images whose figures are counted by hand."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.evaluation import SemSegEvaluator


def logits(pred: np.ndarray, num_classes: int = 3) -> torch.Tensor:
    """(C, H, W) scores whose argmax is `pred`."""
    return torch.nn.functional.one_hot(torch.from_numpy(pred), num_classes).permute(2, 0, 1).float()


@pytest.fixture
def dataset(tmp_path):
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)  # 255: ignored
    Image.fromarray(gt).save(tmp_path / "a.png")
    name = f"semseg_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(
        name, lambda: [{"file_name": "a.jpg", "sem_seg_file_name": str(tmp_path / "a.png")}]
    )
    MetadataCatalog.get(name).set(
        stuff_classes=["sky", "road", "tree"],
        ignore_label=255,
        stuff_dataset_id_to_contiguous_id={10: 0, 20: 1, 30: 2},
    )
    return name


def test_figures_by_hand(dataset, tmp_path):
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 2]])
    evaluator = SemSegEvaluator(dataset, distributed=False, output_dir=str(tmp_path))
    evaluator.reset()
    evaluator.process([{"file_name": "a.jpg"}], [{"sem_seg": logits(pred)}])
    res = evaluator.evaluate()["sem_seg"]
    # counted over the 7 non-ignored pixels:
    # sky: gt 2, pred 2, tp 1 -> IoU 1/3, acc 1/2; road: gt 3, pred 3, tp 2 -> IoU 2/4, acc 2/3;
    # tree: gt 2, pred 2, tp 1 -> IoU 1/3, acc 1/2
    iou = {"sky": 1 / 3, "road": 2 / 4, "tree": 1 / 3}
    acc = {"sky": 1 / 2, "road": 2 / 3, "tree": 1 / 2}
    assert res["mIoU"] == pytest.approx(100 * sum(iou.values()) / 3)
    assert res["fwIoU"] == pytest.approx(
        100 * (2 * iou["sky"] + 3 * iou["road"] + 2 * iou["tree"]) / 7
    )
    assert res["mACC"] == pytest.approx(100 * sum(acc.values()) / 3)
    assert res["pACC"] == pytest.approx(100 * 4 / 7)
    for name in iou:
        assert res[f"IoU-{name}"] == pytest.approx(100 * iou[name])
        assert res[f"ACC-{name}"] == pytest.approx(100 * acc[name])
    written = json.loads((tmp_path / "sem_seg_predictions.json").read_text())
    assert sorted(r["category_id"] for r in written) == [10, 20, 30]


def test_absent_class_is_nan_and_batches_add_up(dataset):
    gt = np.array([[0, 0, 1, 1], [0, 0, 0, 1]])
    evaluator = SemSegEvaluator(dataset, distributed=False, sem_seg_loading_fn=lambda path: gt)
    evaluator.reset()
    pred = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    for _ in range(3):  # the same image three times: the same ratios
        inputs = [{"file_name": "a.jpg", "sem_seg_file_name": "x.png"}]
        evaluator.process(inputs, [{"sem_seg": logits(pred)}])
    res = evaluator.evaluate()["sem_seg"]
    # sky: gt 5, pred 4, tp 4 -> IoU 4/5; road: gt 3, pred 4, tp 3 -> IoU 3/4
    assert res["mIoU"] == pytest.approx(100 * (4 / 5 + 3 / 4) / 2)
    assert res["pACC"] == pytest.approx(100 * 7 / 8)
    assert math.isnan(res["IoU-tree"]) and math.isnan(res["ACC-tree"])


def test_bad_labels_and_shapes(dataset, tmp_path):
    evaluator = SemSegEvaluator(dataset, distributed=False)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        evaluator.process([{"file_name": "a.jpg"}], [{"sem_seg": torch.zeros(4, 2, 4)}])
    with pytest.raises(ValueError, match=r"label image is \(2, 4\), prediction \(3, 4\)"):
        evaluator.process([{"file_name": "a.jpg"}], [{"sem_seg": torch.zeros(3, 3, 4)}])
    Image.fromarray(np.full((2, 4), 7, np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(
        ValueError, match=r"b\.png: .*label 7; .*\(classes 0..2, ignore label 255\)"
    ):
        inputs = [{"file_name": "b.jpg", "sem_seg_file_name": str(tmp_path / "b.png")}]
        evaluator.process(inputs, [{"sem_seg": torch.zeros(3, 2, 4)}])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        inputs = [{"file_name": "b.jpg", "sem_seg_file_name": str(tmp_path / "nope.png")}]
        evaluator.process(inputs, [{"sem_seg": torch.zeros(3, 2, 4)}])
    with pytest.raises(ValueError, match="no sem_seg_file_name for c.jpg"):
        evaluator.process([{"file_name": "c.jpg"}], [{"sem_seg": torch.zeros(3, 2, 4)}])

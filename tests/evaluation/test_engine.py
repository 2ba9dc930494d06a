"""Choosing the engine: hotcoco by default, pycocotools by $MASKTRON_COCO_ENGINE or without
hotcoco (with a message naming the package), and string ids that hotcoco cannot take."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from masktron.evaluation import coco_evaluate
from masktron.evaluation.engine import resolve_engine

TINY = {
    "images": [{"id": "a.jpg", "height": 100, "width": 100}, {"id": "b.jpg", "height": 50}],
    "categories": [{"id": "thing", "name": "thing"}, {"id": "other", "name": "other"}],
    "annotations": [
        {"id": "x", "image_id": "a.jpg", "category_id": "thing", "bbox": [10, 10, 40, 40]},
        {"id": "y", "image_id": "b.jpg", "category_id": "other", "bbox": [5, 5, 20, 10]},
    ],
}
TINY["images"][1]["width"] = 80
for ann in TINY["annotations"]:
    ann |= {"area": ann["bbox"][2] * ann["bbox"][3], "iscrowd": 0}
DETS = [
    {"image_id": "a.jpg", "category_id": "thing", "bbox": [60, 60, 30, 30], "score": 0.9},
    {"image_id": "a.jpg", "category_id": "thing", "bbox": [12, 10, 40, 40], "score": 0.8},
    {"image_id": "b.jpg", "category_id": "other", "bbox": [5, 5, 20, 10], "score": 0.7},
]


def test_environment_variable_and_names(monkeypatch):
    monkeypatch.delenv("MASKTRON_COCO_ENGINE", raising=False)
    assert resolve_engine() == "hotcoco"
    monkeypatch.setenv("MASKTRON_COCO_ENGINE", "pycocotools")
    assert resolve_engine() == "pycocotools" and resolve_engine("hotcoco") == "hotcoco"
    monkeypatch.setenv("MASKTRON_COCO_ENGINE", "faster_coco_eval")
    with pytest.raises(ValueError, match=r"'faster_coco_eval' \(from \$MASKTRON_COCO_ENGINE\)"):
        resolve_engine()


def test_string_ids_give_the_same_figures_on_both_engines():
    # hotcoco takes non-negative integer ids only: others are renumbered for it
    hot = coco_evaluate(TINY, DETS, "bbox", backend="hotcoco")
    ref = coco_evaluate(TINY, DETS, "bbox", backend="pycocotools")
    assert hot == pytest.approx(ref, abs=1e-12, nan_ok=True)
    assert 0 < hot["AP-thing"] < 100 and hot["AP-other"] == pytest.approx(100.0)
    subset = coco_evaluate(TINY, DETS, "bbox", img_ids=["b.jpg"])
    assert subset["AP"] == pytest.approx(100.0)


def test_without_hotcoco_pycocotools_takes_over():
    script = textwrap.dedent(
        f"""
        import sys, warnings
        sys.modules["hotcoco"] = None  # as if not installed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import masktron.evaluation as ev
        assert any("pip install hotcoco" in str(w.message) for w in caught), caught
        assert abs(ev.coco_evaluate({TINY!r}, {DETS!r}, "bbox")["AP-other"] - 100) < 1e-9
        for call in (lambda: ev.pq_compute("a.json", "b.json"),
                     lambda: ev.coco_evaluate({TINY!r}, [], backend="hotcoco")):
            try:
                call()
            except ImportError as e:
                assert "needs the package 'hotcoco' (pip install hotcoco)" in str(e), e
            else:
                raise AssertionError("no ImportError")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cocoeval_opt_takes_pycocotools_objects(coco_sample, iou_type):
    """Detectron2's `fast_eval_api.COCOeval_opt(coco_gt, coco_gt.loadRes(results), iou_type)`."""
    import contextlib
    import copy
    import io

    from eval_helpers import load_gt, noisy_detections, pycocotools_reference
    from pycocotools.coco import COCO

    from masktron.evaluation.fast_eval_api import COCOeval_opt

    path, gt = load_gt(coco_sample, "val")
    dets = noisy_detections(gt, seed=13)
    if iou_type == "segm":  # as Detectron2 passes them: mask areas decide the size
        dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(path)
        evaluator = COCOeval_opt(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), iou_type)
        evaluator.params.maxDets = [1, 10, 100]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    reference = pycocotools_reference(gt, dets, iou_type)
    assert np.allclose(evaluator.stats, reference.stats, atol=1e-12, rtol=0)
    assert np.allclose(evaluator.eval["precision"], reference.eval["precision"], atol=1e-12)

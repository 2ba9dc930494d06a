"""Mask and box AP of the bundled DSB2018 Mask R-CNN in fp32 and in `MODEL.PRECISION = "bf16"`.

The issue's bar for bf16 is a mask AP within 0.3 of fp32 on the model's full val split (132
images, 5,545 nuclei; ../shared/data/dsb2018). Both runs use the same config, weights, loader and
COCO evaluator; only `MODEL.PRECISION` differs.

    python benchmarks/dsb2018_bf16_ap.py [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from masktron import model_zoo
from masktron.cli.demo import DEMO_CONFIG
from masktron.data import build_detection_test_loader, register_coco_instances
from masktron.engine import DefaultPredictor
from masktron.evaluation import COCOEvaluator, inference_on_dataset

SHARED = Path(os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = SHARED / "data" / "dsb2018"
    if not (root / "annotations" / "val.json").is_file():
        print(f"DSB2018 not found under {root} (set MASKTRON_SHARED)")
        return 1
    name = "dsb2018_val_bf16_ap"
    register_coco_instances(name, {}, str(root / "annotations" / "val.json"), str(root / "images"))
    ap: dict[str, dict[str, float]] = {}
    for precision in ("fp32", "bf16"):
        cfg = model_zoo.get_config(DEMO_CONFIG, trained=True)
        cfg.MODEL.DEVICE = args.device
        cfg.MODEL.PRECISION = precision
        cfg.DATASETS.TEST = (name,)
        cfg.DATALOADER.NUM_WORKERS = 1
        model = DefaultPredictor(cfg).model
        loader = build_detection_test_loader(cfg, name)
        with tempfile.TemporaryDirectory(prefix="masktron_dsb_eval_") as output_dir:
            evaluator = COCOEvaluator(name, output_dir=output_dir, distributed=False)
            results = inference_on_dataset(model, loader, evaluator)
        ap[precision] = {task: results[task]["AP"] for task in ("bbox", "segm")}
        print(
            f"{precision}: box AP {ap[precision]['bbox']:.2f}, mask AP {ap[precision]['segm']:.2f}"
        )
    for task, label in (("segm", "mask"), ("bbox", "box")):
        diff = ap["bf16"][task] - ap["fp32"][task]
        print(f"{label} AP bf16 - fp32: {diff:+.2f} (goal for mask AP: within 0.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

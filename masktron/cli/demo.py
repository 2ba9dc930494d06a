"""Run masktron's bundled nuclei model on the bundled images: works offline, right after install.

The model is a compact Mask R-CNN trained from scratch by masktron on the 2018 Data Science
Bowl nuclei (CC0); its weights and three validation images ship inside the package. Writes
the drawn images and `results.json` (COCO results with RLE masks) into --out.

Examples:
  masktron demo                          # bundled images -> ./output/demo
  masktron demo my_cells.png --out out/  # your own microscopy images
"""

from __future__ import annotations

import argparse
import os

from masktron.cli.main import CommandError

DEMO_CONFIG = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"
DEMO_IMAGE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_zoo", "demo_images"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="*", metavar="IMAGE_OR_FOLDER", help="default: the bundled images"
    )
    parser.add_argument("--out", default=os.path.join("output", "demo"), help="output folder")
    parser.add_argument("--conf", type=float, default=0.5, help="minimum score (default 0.5)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")


def run(args: argparse.Namespace) -> int:
    from masktron import model_zoo
    from masktron.cli.predict import collect_images, predict_images
    from masktron.data.catalog import Metadata
    from masktron.engine import DefaultPredictor

    cfg = model_zoo.get_config(DEMO_CONFIG, trained=True)
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.conf
    weights = model_zoo.get_checkpoint_url(DEMO_CONFIG)
    from masktron.checkpoint import get_local_path

    if not os.path.isfile(get_local_path(weights)):
        raise CommandError(f"the bundled weights are missing from the installation ({weights})")
    paths = collect_images(args.inputs or [DEMO_IMAGE_DIR])
    predictor = DefaultPredictor(cfg)
    metadata = Metadata(
        name="masktron_demo",
        thing_classes=["nucleus"],
        thing_colors=[(0, 200, 255)],
        thing_dataset_id_to_contiguous_id={1: 0},  # DSB2018's COCO JSON: nucleus is id 1
    )
    done, failures = predict_images(predictor, metadata, paths, args.out)
    print(
        f"masktron demo: {done} image(s) -> {os.path.abspath(args.out)} (drawings + results.json)"
    )
    if failures:
        raise CommandError(f"{len(failures)} image(s) failed: " + "; ".join(failures))
    return 0

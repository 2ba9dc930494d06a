"""CPU inference time per image: masktron's Mask R-CNN R50-FPN vs torchvision's.

Both models run in this process on the same photos, with the same thread count, the same
test resize (shortest side 800, longest at most 1333) and 100 detections per image, so the
ratio compares the implementations, not the settings. Weights: masktron loads the parity
fixture (Detectron2 model-zoo format) when ../shared is present, else random; torchvision's
are random with its score threshold at 0 so it also returns 100 masks per image. masktron
also runs with `MODEL.PRECISION = "bf16"` (docs/speed.md), against the same fp32 torchvision.

    python benchmarks/bench_maskrcnn_cpu.py [--threads 2] [--repeats 3] [IMAGES...]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from masktron import model_zoo
from masktron.config import get_cfg
from masktron.engine import DefaultPredictor
from masktron.utils.file_io import atomic_open

SHARED = Path(os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_IMAGES = ["astronaut.png", "coffee.png", "chelsea.png", "grace_hopper.png"]


def masktron_predictor(weights: str | None, precision: str = "fp32") -> DefaultPredictor:
    cfg = get_cfg()
    cfg.merge_from_file(
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    )
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = weights or ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0 if weights is None else 0.05
    cfg.MODEL.PRECISION = precision
    return DefaultPredictor(cfg)


def fixture_pickle() -> str | None:
    calib = SHARED / "fixtures" / "mask_rcnn_R_50_FPN_3x.s0.calib.npz"
    if not calib.exists():
        return None
    sys.path.insert(0, str(SHARED / "fixtures"))
    from fixture_weights import calibrated_weights

    # one fixed file, rewritten each run: a killed run leaves no new copy behind
    path = Path(tempfile.gettempdir()) / "masktron_benchmarks" / "mask_rcnn_fixture.pkl"
    with atomic_open(path) as f:
        pickle.dump({"model": calibrated_weights(None, str(calib)), "__author__": "fixture"}, f)
    return str(path)


def time_interleaved(fns, inputs, repeats: int) -> list[tuple[float, int]]:
    """Per function: median seconds per image over `repeats` passes (after one warm-up), and
    detections per image. Each image goes through every function in turn, so a change of the
    machine's load during the run affects all of them alike."""
    for fn in fns:
        fn(inputs[0])
    per_pass: list[list[float]] = [[] for _ in fns]
    counts = [0] * len(fns)
    for _ in range(repeats):
        spent = [0.0] * len(fns)
        for x in inputs:
            for k, fn in enumerate(fns):
                start = time.perf_counter()
                counts[k] = fn(x)
                spent[k] += time.perf_counter() - start
        for k in range(len(fns)):
            per_pass[k].append(spent[k] / len(inputs))
    return [(statistics.median(p), n) for p, n in zip(per_pass, counts)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "images", nargs="*", help="photos (default: four from ../shared/data/images)"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = args.images or [str(SHARED / "data" / "images" / n) for n in DEFAULT_IMAGES]
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]

    weights = fixture_pickle()
    ours = masktron_predictor(weights)
    ours_bf16 = masktron_predictor(weights, "bf16")

    def run_ours(rgb: np.ndarray) -> int:
        return len(ours(rgb[:, :, ::-1])["instances"])

    def run_ours_bf16(rgb: np.ndarray) -> int:
        return len(ours_bf16(rgb[:, :, ::-1])["instances"])

    theirs = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0, detections_per_img=100
    ).eval()

    @torch.inference_mode()
    def run_theirs(rgb: np.ndarray) -> int:
        # (H, W, 3) -> (3, H, W)
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
        return len(theirs([tensor])[0]["boxes"])

    load_before = os.getloadavg()[0]
    timings = time_interleaved([run_ours, run_ours_bf16, run_theirs], rgbs, args.repeats)
    (t_ours, n_ours), (t_bf16, n_bf16), (t_theirs, n_theirs) = timings
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads"
    )
    print(f"{len(rgbs)} images, median of {args.repeats} passes, interleaved per image")
    # Other jobs on the machine inflate the times (the ratios much less): say how busy it was.
    print(
        f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        f"masktron    mask_rcnn_R_50_FPN_3x : {t_ours * 1000:8.1f} ms/image ({n_ours} dets/image)"
    )
    print(
        f"masktron    MODEL.PRECISION=bf16  : {t_bf16 * 1000:8.1f} ms/image ({n_bf16} dets/image)"
    )
    t_ms = t_theirs * 1000
    print(f"torchvision maskrcnn_resnet50_fpn : {t_ms:8.1f} ms/image ({n_theirs} dets/image)")
    print(f"ratio torchvision / masktron      : {t_theirs / t_ours:8.2f}x (>1: masktron is faster)")
    print(f"ratio torchvision / masktron bf16 : {t_theirs / t_bf16:8.2f}x (torchvision in fp32)")


if __name__ == "__main__":
    main()

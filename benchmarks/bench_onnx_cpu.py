"""CPU inference time per image: an exported detector in onnxruntime vs masktron's PyTorch path.

Both run in this process, on the same photos, with the same thread count and the same
pre/post-processing (resize to a short side of 800, mask pasting, panoptic merge): PyTorch
through `DefaultPredictor`, ONNX through `masktron.export.OnnxDetector`. Weights: the parity
fixture of the chosen model (Detectron2 model-zoo format) when ../shared is present, else the
bundled DSB2018 model. Prints seconds per image and the ratio PyTorch / onnxruntime.

    python benchmarks/bench_onnx_cpu.py [--model mask_rcnn_R_50_FPN_3x] [--threads 2]
        [--repeats 3] [IMAGES...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from masktron import model_zoo
from masktron.engine import DefaultPredictor
from masktron.export import OnnxDetector, export_detector

SHARED = Path(os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CONFIGS = {
    "mask_rcnn_R_50_FPN_3x": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "retinanet_R_50_FPN_3x": "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "panoptic_fpn_R_50_3x": "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml",
    "dsb2018": "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml",
}
DEFAULT_IMAGES = ["astronaut.png", "coffee.png"]


def fixture_weights(name: str, folder: str) -> str | None:
    """The fixture's weights as a model-zoo .pkl in `folder`, or None without ../shared."""
    calib = SHARED / "fixtures" / f"{name}.s0.calib.npz"
    if not calib.exists():
        return None
    spec = importlib.util.spec_from_file_location("fw", SHARED / "fixtures" / "fixture_weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = os.path.join(folder, f"{name}.pkl")
    with open(path, "wb") as f:
        weights = module.calibrated_weights(None, str(calib))
        pickle.dump({"model": weights, "__author__": "Detectron2 Model Zoo"}, f)
    return path


def time_per_image(run, images: list[np.ndarray], repeats: int) -> float:
    run(images[0])  # warm-up: allocations, onnxruntime's first-run graph preparation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            run(image)
        times.append((time.perf_counter() - start) / len(images))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", help=f"photos (default: {DEFAULT_IMAGES})")
    parser.add_argument("--model", choices=sorted(CONFIGS), default="mask_rcnn_R_50_FPN_3x")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = args.images or [str(SHARED / "data" / "images" / n) for n in DEFAULT_IMAGES]
    bgr = [np.asarray(Image.open(p).convert("RGB"))[:, :, ::-1].copy() for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = model_zoo.get_config(CONFIGS[args.model])
        cfg.MODEL.DEVICE = "cpu"
        weights = fixture_weights(args.model, tmp) if args.model != "dsb2018" else None
        cfg.MODEL.WEIGHTS = weights or model_zoo.get_checkpoint_url(CONFIGS["dsb2018"])
        if weights is None and args.model != "dsb2018":
            sys.exit(f"no fixture weights for {args.model} under {SHARED}; try --model dsb2018")
        predictor = DefaultPredictor(cfg)
        path = os.path.join(tmp, "model.onnx")
        start = time.perf_counter()
        export_detector(
            predictor.model,
            path,
            min_size_test=cfg.INPUT.MIN_SIZE_TEST,
            max_size_test=cfg.INPUT.MAX_SIZE_TEST,
        )
        export_s = time.perf_counter() - start
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        detector = OnnxDetector(path)
        detector.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        conf = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
        with torch.inference_mode():
            torch_s = time_per_image(predictor, bgr, args.repeats)
        onnx_s = time_per_image(lambda im: detector(im, score_thresh=None), bgr, args.repeats)
    print(
        f"model {args.model}, {len(bgr)} image(s), {args.threads} thread(s), "
        f"export {export_s:.1f} s"
    )
    print(f"pytorch      {torch_s:.3f} s/img")
    print(f"onnxruntime  {onnx_s:.3f} s/img")
    print(f"ratio pytorch/onnxruntime = {torch_s / onnx_s:.2f} (score threshold {conf})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

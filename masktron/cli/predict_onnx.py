"""`masktron predict --onnx model.onnx`: the predict command on an exported detector.

The graph runs in onnxruntime and `masktron.export.onnx_runtime.OnnxDetector` does the
resize, the mask pasting and the panoptic merge in numpy; its outputs are wrapped in the
`Instances` the PyTorch path gives, so the drawings, `results.json`, `panoptic.json` and PNGs
are written by the same code as `masktron predict --config`.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from masktron.cli.main import CommandError


class OnnxPredictor:
    """`DefaultPredictor`'s call interface over an `OnnxDetector`.

    Args:
        detector: the exported model in onnxruntime.
        conf: minimum score (and Panoptic FPN's instance threshold), as `--conf`.
    """

    def __init__(self, detector: Any, conf: float):
        self.detector = detector
        self.conf = conf

    def __call__(self, bgr: np.ndarray) -> dict[str, Any]:
        """(H, W, 3) uint8 BGR -> `{"instances": Instances}` (+ `sem_seg`, `panoptic_seg`)."""
        import torch

        from masktron.structures import Boxes, Instances

        out = self.detector(bgr, score_thresh=self.conf)
        instances = Instances(
            bgr.shape[:2],
            pred_boxes=Boxes(torch.from_numpy(out["boxes"])),
            scores=torch.from_numpy(out["scores"]),
            pred_classes=torch.from_numpy(out["classes"]),
        )
        if "masks" in out:
            instances.pred_masks = torch.from_numpy(out["masks"])
        outputs: dict[str, Any] = {"instances": instances}
        if "sem_seg" in out:
            outputs["sem_seg"] = torch.from_numpy(out["sem_seg"])
            ids, segments = out["panoptic_seg"]
            outputs["panoptic_seg"] = (torch.from_numpy(ids), segments)
        return outputs


def _providers(device: str | None) -> list[str] | None:
    if device is None or device == "cpu":
        return None
    if device.startswith("cuda"):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise CommandError(f"--device {device}: with --onnx, use cpu or cuda")


def run_onnx(args: argparse.Namespace) -> int:
    """Predict with the exported model `args.onnx` into `args.out`."""
    from masktron.cli.failures import FailureLog
    from masktron.cli.input_limits import apply_limit_arguments
    from masktron.cli.predict import collect_images, predict_images, take_trailing_overrides
    from masktron.cli.run_config import collect_overrides
    from masktron.data.catalog import Metadata
    from masktron.export.onnx_runtime import OnnxDetector

    take_trailing_overrides(args)
    if args.config or args.weights or collect_overrides(args):
        args._parser.error(
            "--onnx reads its settings from the file: drop --config/--weights/--opts"
        )
    if getattr(args, "track", None):
        args._parser.error("--onnx runs on images; tracking videos needs the PyTorch model")
    paths = collect_images(args.inputs)
    apply_limit_arguments(args)
    try:
        detector = OnnxDetector(args.onnx, providers=_providers(args.device))
    except ImportError as e:
        raise CommandError(f"--onnx needs onnxruntime: pip install 'masktron[export]' ({e})") from e
    except Exception as e:  # onnxruntime's own errors for a missing or broken file
        raise CommandError(f"--onnx {args.onnx}: {e}") from e
    if args.conf < detector.score_thresh:
        raise CommandError(
            f"--conf {args.conf} is below the score threshold {detector.score_thresh} exported in "
            f"{args.onnx}; export again with --opts MODEL.ROI_HEADS.SCORE_THRESH_TEST {args.conf} "
            f"(MODEL.RETINANET.SCORE_THRESH_TEST for RetinaNet)"
        )
    metadata = Metadata(name=args.onnx, **detector.metadata)
    image_ids = None
    if args.gt:
        from masktron.cli.predict_gt import ground_truth_ids

        image_ids = ground_truth_ids(args.gt, paths)
    predictor = OnnxPredictor(detector, args.conf)
    failures = FailureLog(args.out, what="image")
    done, _ = predict_images(
        predictor,
        metadata,
        paths,
        args.out,
        image_ids=image_ids,
        labels=not args.no_labels,
        failures=failures,
        max_draw_size=args.max_draw_size,
    )
    print(f"wrote {done} image(s) and results.json to {args.out}")
    return failures.finish()

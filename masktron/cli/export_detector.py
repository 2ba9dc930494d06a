"""`masktron export --config CFG --weights W --format onnx --out model.onnx`: a detector."""

from __future__ import annotations

import argparse
import os

from masktron.cli.main import CommandError
from masktron.cli.run_config import add_override_arguments, build_config, collect_overrides


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="a detector's YAML config or model-zoo name (Faster/Mask R-CNN, RetinaNet, "
        "Panoptic FPN), e.g. masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml",
    )
    parser.add_argument(
        "--weights",
        help="the detector's checkpoint (default: the zoo's weights, else MODEL.WEIGHTS)",
    )
    parser.add_argument(
        "--format", choices=["onnx"], default="onnx", help="export format (default: onnx)"
    )
    add_override_arguments(parser, trailing=False)


def run_detector(args: argparse.Namespace) -> int:
    """Build the model of `--config`, load `--weights`, and write the ONNX file `--out`."""
    from masktron.checkpoint import DetectionCheckpointer
    from masktron.data.run_datasets import config_metadata
    from masktron.export.detector_onnx import ExportError, export_detector
    from masktron.model_zoo import model_zoo
    from masktron.models.build import build_model

    if args.opset < 16:
        args._parser.error(f"--opset must be at least 16 for a detector, got {args.opset}")
    overrides = collect_overrides(args)
    flags = {"MODEL.WEIGHTS": args.weights or None, "MODEL.DEVICE": "cpu"}
    cfg, zoo_name = build_config(args.config, overrides, flags, limit_workers=False)
    weights_given = args.weights or "MODEL.WEIGHTS" in overrides[0::2]
    if (
        not weights_given
        and zoo_name is not None
        and zoo_name.removesuffix(".yaml") in model_zoo.ZOO
    ):
        cfg.MODEL.WEIGHTS = model_zoo.get_checkpoint_url(zoo_name)
    if not cfg.MODEL.WEIGHTS:
        raise CommandError("no weights: pass --weights PATH_OR_URL (or set MODEL.WEIGHTS)")
    cfg.MODEL.DEVICE = "cpu"  # export traces on the CPU; the file runs on any provider
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    labels = config_metadata(cfg)
    metadata = labels.as_dict() if labels is not None else None
    try:
        out = export_detector(
            model,
            args.out,
            min_size_test=cfg.INPUT.MIN_SIZE_TEST,
            max_size_test=cfg.INPUT.MAX_SIZE_TEST,
            metadata=metadata,
            opset=args.opset,
        )
    except ExportError as e:
        raise CommandError(f"{args.config}: {e}") from e
    print(f"wrote {os.path.abspath(out)} ({os.path.getsize(out) / 2**20:.1f} MiB)")
    return 0

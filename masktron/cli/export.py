"""Export a detector (Faster/Mask R-CNN, RetinaNet, Panoptic FPN) or SAM's prompt encoder and
mask decoder to ONNX.

Detectors: `--config` (a YAML file or a zoo name) and `--weights`, as for `masktron predict`;
the graph takes one resized image and returns boxes, scores, classes (and mask
probabilities, semantic logits); run it with `masktron predict --onnx FILE` or
`masktron.export.OnnxDetector` (see docs/export.md and masktron.export.detector_onnx).

SAM (the interface of Meta's export):

The image encoder stays in PyTorch: compute an image's embedding once with
`SamPredictor.get_image_embedding()`, then run the exported graph per click in any ONNX
runtime. Inputs: image_embeddings, point_coords (1024-long-side frame), point_labels,
mask_input, has_mask_input, orig_im_size; outputs: masks, iou_predictions, low_res_masks
(see masktron.export.sam_onnx). Needs the `export` extra: pip install 'masktron[export]'.

Examples:
  masktron export --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
      --weights model_final.pkl --format onnx --out mask_rcnn.onnx
  masktron export --checkpoint sam_vit_h_4b8939.pth --out sam_vit_h_decoder.onnx
  masktron export --checkpoint sam_vit_b_01ec64.pth --return-single-mask --out decoder.onnx
"""

from __future__ import annotations

import argparse
import os

from masktron.cli.export_detector import add_detector_arguments, run_detector
from masktron.cli.sam import MODELS, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="Meta's SAM .pth file (or its URL)")
    add_detector_arguments(parser)
    parser.add_argument(
        "--model",
        choices=MODELS,
        help="SAM variant (default: read from the checkpoint's tensor shapes)",
    )
    parser.add_argument("--out", required=True, metavar="FILE.onnx", help="the file to write")
    parser.add_argument(
        "--opset", type=int, default=18, help="ONNX opset version (default: 18, at least 18)"
    )
    parser.add_argument(
        "--return-single-mask",
        action="store_true",
        help="one mask per prompt (the best) instead of all 4 outputs",
    )
    parser.add_argument(
        "--use-stability-score",
        action="store_true",
        help="report stability scores in place of the predicted IoUs",
    )
    parser.add_argument(
        "--return-extra-metrics",
        action="store_true",
        help="also output the masks' stability scores and areas",
    )


def run(args: argparse.Namespace) -> int:
    from masktron.export import export_sam_onnx

    if args.config:
        if args.checkpoint:
            args._parser.error("--checkpoint (SAM) and --config (a detector) exclude each other")
        return run_detector(args)
    if not args.checkpoint:
        args._parser.error("give --config CFG (a detector) or --checkpoint SAM.pth")
    if args.opset < 18:
        args._parser.error(f"--opset must be at least 18, got {args.opset}")
    model = load_model(args.checkpoint, args.model, "cpu")
    path = export_sam_onnx(
        model,
        args.out,
        opset=args.opset,
        return_single_mask=args.return_single_mask,
        use_stability_score=args.use_stability_score,
        return_extra_metrics=args.return_extra_metrics,
    )
    print(f"wrote {os.path.abspath(path)} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    return 0

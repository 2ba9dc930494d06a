"""Segment Anything 2: masks for point/box prompts or everything in an image; objects tracked
through a video.

An IMAGE gets, in --out (STEM is its file name without extension):
  STEM_masks/000.png ...  one black/white PNG per mask, at the image's size
  STEM_masks.json         the masks as COCO RLE with their scores, boxes (XYWH) and prompts
  STEM_overlay.png        the image with the masks and prompts drawn
Points are X,Y in image pixels, optionally with a label: 1 = on the object (default), 0 = not.
One point gives SAM 2's best of its 3 candidate masks; --multimask keeps all 3. Several --box
give one mask each; points go with at most one box. --auto segments everything (Meta's
SAM2AutomaticMaskGenerator; its defaults, tuned for Hiera-L).

A VIDEO file (mp4, mov, mkv, ...) or a FRAMES_DIR (a folder of frames, numbered as 00000.jpg
or named in order) gets its prompted objects tracked through every frame: prompts take a frame
with @FRAME (default 0), e.g. --point 210,350@0 --box 300,0,500,400@12. Outputs: per-frame,
per-object mask PNGs, a preview video with the masks and object ids, and COCO RLE JSON per frame.

The model variant (SAM 2 / 2.1, tiny ... large) is read from the checkpoint's tensor shapes.
--checkpoint sam2.1_hiera_t (_s, _b+, _l; sam2_hiera_* for SAM 2.0) downloads Meta's weights
once into the cache (offline: the message names the URL and the path to put the file at).

Examples:
  masktron sam2 photo.jpg --checkpoint sam2.1_hiera_tiny.pt --point 520,375 --out out/
  masktron sam2 photo.jpg --checkpoint sam2.1_hiera_l --box 75,275,1725,850 \\
      --point 575,750,0 --out out/
  masktron sam2 photo.jpg --checkpoint sam2.1_hiera_b+ --auto --out out/
  masktron sam2 clip.mp4 --checkpoint sam2.1_hiera_t --point 210,350@0 --box 300,0,500,400 \\
      --out out/
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import numpy as np

from masktron.cli.input_limits import add_limit_arguments
from masktron.cli.main import CommandError
from masktron.cli.sam import add_precision_argument
from masktron.cli.sam import parse_box as _parse_box_values
from masktron.cli.sam import parse_point as _parse_point_values


def _split_frame(text: str, option: str) -> tuple[str, int]:
    """'VALUES@FRAME' -> ('VALUES', FRAME); no '@' means frame 0."""
    values, at, frame = text.partition("@")
    if not at:
        return text, 0
    if not frame.isdigit():
        raise argparse.ArgumentTypeError(
            f"{option} frame after '@' must be a frame index (0, 1, ...), got {text!r}"
        )
    return values, int(frame)


def parse_point(text: str) -> tuple[float, float, int, int]:
    """'X,Y[,LABEL][@FRAME]' -> (x, y, label, frame); label 1 = object (default), 0 = not."""
    values, frame = _split_frame(text, "--point")
    x, y, label = _parse_point_values(values)
    return x, y, label, frame


def parse_box(text: str) -> tuple[float, float, float, float, int]:
    """'X0,Y0,X1,Y1[@FRAME]' -> (x0, y0, x1, y1, frame) in pixels."""
    values, frame = _split_frame(text, "--box")
    x0, y0, x1, y1 = _parse_box_values(values)
    return x0, y0, x1, y1, frame


# argparse takes "-10,-10" (and "-1e9") for an option: numbers, and comma-separated numbers with
# an optional @FRAME, are values, so `--point -10,-10` is a point left of the image.
_NEGATIVE_VALUES = re.compile(
    r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-[\d.eE+-]*(,[-+]?[\d.eE+-]+)+(@\d+)?$"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = _NEGATIVE_VALUES  # type: ignore[attr-defined]
    parser.add_argument(
        "input", metavar="IMAGE|VIDEO|FRAMES_DIR", help="an image, a video file or a frame folder"
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a SAM 2 .pt file, a URL, or a variant name (sam2.1_hiera_t, _s, _b+, _l; "
        "sam2_hiera_*) whose official weights are downloaded once into the cache",
    )
    parser.add_argument(
        "--model",
        metavar="VARIANT",
        help="variant or Meta config name, e.g. sam2.1_hiera_t or configs/sam2.1/sam2.1_hiera_t"
        ".yaml (default: read from the checkpoint's tensor shapes)",
    )
    parser.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar="X,Y[,LABEL][@FRAME]",
        help="a prompt point; repeat for several (label 1 = object, 0 = background; "
        "@FRAME: the video frame, default 0)",
    )
    parser.add_argument(
        "--box",
        type=parse_box,
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1[@FRAME]",
        help="a prompt box; repeat for several objects (one mask each)",
    )
    parser.add_argument("--auto", action="store_true", help="segment everything (images)")
    parser.add_argument("--multimask", action="store_true", help="keep the 3 candidate masks")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda if available)")
    add_precision_argument(parser, "the image encoder and the video memory", "docs/sam2.md")
    add_limit_arguments(parser)
    auto = parser.add_argument_group("--auto options (Meta's SAM 2 defaults)")
    auto.add_argument("--points-per-side", type=int, default=32)
    auto.add_argument("--points-per-batch", type=int, default=64)
    auto.add_argument("--pred-iou-thresh", type=float, default=0.8)
    auto.add_argument("--stability-score-thresh", type=float, default=0.95)
    auto.add_argument("--box-nms-thresh", type=float, default=0.7)
    auto.add_argument("--crop-n-layers", type=int, default=0)
    auto.add_argument(
        "--use-m2m", action="store_true", help="refine each mask once with itself as mask input"
    )
    video = parser.add_argument_group("video options")
    video.add_argument("--gif", action="store_true", help="also write a GIF preview")
    video.add_argument("--fps", type=float, help="preview frame rate (default: the video's)")


def is_video_input(path: str) -> bool:
    """A folder of frames or a video file (by extension) is tracked as a video."""
    from masktron.data.video_sources import is_video_file

    return os.path.isdir(path) or is_video_file(path)


def load_model(args: argparse.Namespace, *, video: bool = False) -> Any:
    """Build the SAM 2 model of `--checkpoint` (variant from `--model` or the file) on
    `--device` in `--precision`; `video=True` applies the settings of Meta's video predictor."""
    import torch

    from masktron.model_zoo.sam2_checkpoints import resolve_sam2_checkpoint
    from masktron.models.precision import precision_dtype
    from masktron.models.sam2 import build_sam2, build_sam2_video_model
    from masktron.models.sam2.precision import set_sam2_precision

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = getattr(args, "precision", "fp32")
    try:  # before the build: a wrong combination fails at once
        precision_dtype(precision, device, setting="--precision")
    except ValueError as e:
        raise CommandError(str(e)) from None
    checkpoint, known = resolve_sam2_checkpoint(args.checkpoint)
    builder = build_sam2_video_model if video else build_sam2
    model = builder(args.model or known, checkpoint, device="cpu")
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise CommandError(f"--device {device}: {e}") from None
    return set_sam2_precision(model, precision)  # after loading: weights rounded once


def run(args: argparse.Namespace) -> int:
    if args.auto and (args.point or args.box):
        args._parser.error("--auto segments everything: drop --point/--box, or drop --auto")
    if not args.auto and not (args.point or args.box):
        args._parser.error("give prompts (--point, --box) or --auto")
    if not os.path.exists(args.input):
        raise CommandError(f"{args.input}: no such file or folder")
    if is_video_input(args.input):
        return run_video(args)
    if any(p[3] for p in args.point) or any(b[4] for b in args.box):
        args._parser.error(f"{args.input} is an image: @FRAME is for videos (frame folders)")
    if len(args.box) > 1 and args.point:
        args._parser.error("points go with at most one --box (several boxes: one mask each)")
    from masktron.cli.input_limits import apply_limit_arguments

    apply_limit_arguments(args)
    model = load_model(args)
    segment_image(model, args.input, args)
    return 0


def run_video(args: argparse.Namespace) -> int:
    """A video file or a frame folder: prompted objects tracked through every frame, the
    outputs written by `masktron.cli.sam2_video` (see its docstring)."""
    from masktron.cli.sam2_video import group_prompts, track_video
    from masktron.predictors.sam2_video import SAM2VideoPredictor

    if args.auto:
        args._parser.error(
            "--auto is for images; for a video, prompt objects (--point, --box), or let a "
            "detector find them: masktron predict VIDEO --track sam2"
        )
    try:
        prompts = group_prompts(args.point, args.box)
    except ValueError as e:
        args._parser.error(str(e))
    predictor = SAM2VideoPredictor(load_model(args, video=True))
    summary = track_video(predictor, args.input, prompts, args.out, gif=args.gif, fps=args.fps)
    print(
        f"{len(summary['objects'])} object(s) tracked over {summary['frames']} frame(s) of "
        f"{args.input}, written to {args.out}"
    )
    return 0


def segment_image(model: Any, path: str, args: argparse.Namespace) -> None:
    """Read one image, segment it as `args` asks and write its outputs into `args.out`."""
    from masktron.cli.sam import write_outputs
    from masktron.cli.sam_progress import encoder_progress
    from masktron.data import read_image
    from masktron.predictors.sam2_image import SAM2ImagePredictor

    image = read_image(path, format="RGB")
    predictor = SAM2ImagePredictor(model)
    with encoder_progress(model, os.path.basename(path)):
        if args.auto:
            records = _segment_everything(predictor, image, args)
            prompts: dict[str, Any] = {}
        else:
            predictor.set_image(image)
            records, prompts = _segment_prompts(predictor, args)
    stem = os.path.splitext(os.path.basename(path))[0]
    write_outputs(args.out, stem, image, records, prompts, args, path)
    print(f"{len(records)} mask(s) of {path} written to {args.out}")


def _segment_prompts(
    predictor: Any, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    points = np.array([p[:2] for p in args.point], dtype=np.float64).reshape(-1, 2)
    labels = np.array([p[2] for p in args.point], dtype=np.int64)
    boxes = np.array([b[:4] for b in args.box], dtype=np.float64).reshape(-1, 4)
    # A lone point is ambiguous: ask for 3 masks and keep the best unless --multimask.
    multimask = args.multimask or (len(points) == 1 and len(boxes) == 0)
    masks, ious, _ = predictor.predict(
        point_coords=points if len(points) else None,
        point_labels=labels if len(points) else None,
        box=boxes if len(boxes) > 1 else (boxes[0] if len(boxes) else None),
        multimask_output=multimask,
    )
    h, w = masks.shape[-2:]
    masks = masks.reshape(-1, masks.shape[-3], h, w) > 0  # (K, C, H, W) bool, K objects
    ious = ious.reshape(len(masks), -1)
    records = []
    for k in range(len(masks)):
        keep = range(masks.shape[1]) if args.multimask else [int(np.argmax(ious[k]))]
        for c in keep:
            record = {"segmentation": masks[k, c], "predicted_iou": float(ious[k, c])}
            if len(boxes) > 1:
                record["box"] = boxes[k].tolist()
            records.append(record)
    prompts = {"point_coords": points, "point_labels": labels, "boxes": boxes}
    return records, prompts


def _segment_everything(
    predictor: Any, image: np.ndarray, args: argparse.Namespace
) -> list[dict[str, Any]]:
    from masktron.predictors.sam2_auto_mask import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(
        predictor,
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        box_nms_thresh=args.box_nms_thresh,
        crop_n_layers=args.crop_n_layers,
        use_m2m=args.use_m2m,
    )
    return generator.generate(image, progress=True)

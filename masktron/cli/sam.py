"""Segment Anything: masks for point/box prompts, or for everything in the image (--auto).

Writes, into --out (STEM is the image's file name without extension):
  STEM_masks/000.png ...  one black/white PNG per mask, at the image's size
  STEM_masks.json         the masks as COCO RLE with their scores, boxes (XYWH) and prompts
  STEM_overlay.png        the image with the masks and prompts drawn

Points are X,Y in image pixels, optionally with a label: 1 = on the object (default), 0 = not.
One point gives SAM's best of its 3 candidate masks; --multimask keeps all 3.

Examples:
  masktron sam photo.jpg --checkpoint sam_vit_h_4b8939.pth --point 520,375 --out out/
  masktron sam photo.jpg --checkpoint sam_vit_b_01ec64.pth --box 75,275,1725,850 \\
      --point 575,750,0 --out out/
  masktron sam photo.jpg --checkpoint sam_vit_b_01ec64.pth --auto --out out/
  masktron sam photos/ --checkpoint vit_b --auto --out out/   # every image of a folder

On a folder, one bad image costs only itself: it is reported in one line (file, reason) and
listed in `failed.json` in --out, the others are still segmented, and the exit code is 1 after a
summary when any failed (0 otherwise). Images over --max-pixels are refused before decoding
(decompression bombs); overlays are downscaled to --max-draw-size (masks and JSON stay in
original pixels). See docs/reliability.md.

--checkpoint vit_b (vit_l, vit_h) downloads Meta's weights once into the cache (offline: the
message names the URL and the path to put the file at). A bar follows the image encoder's
blocks, the slow part on a CPU (tens of seconds per image).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

import numpy as np

from masktron.cli.input_limits import add_limit_arguments
from masktron.cli.main import CommandError

MODELS = ("vit_b", "vit_l", "vit_h", "default")


def _numbers(text: str, counts: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts or not all(np.isfinite(values)):
        forms = " or ".join(_FORMS[what])
        raise argparse.ArgumentTypeError(f"{what} must be {forms}, got {text!r}")
    return values


_FORMS = {"--point": ("X,Y", "X,Y,LABEL"), "--box": ("X0,Y0,X1,Y1",)}


def add_precision_argument(parser: argparse.ArgumentParser, what: str, doc: str) -> None:
    """`--precision {fp32,bf16,fp16}` (default fp32): run `what` in reduced precision."""
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help=f"run {what} in bf16/fp16 (fp16: CUDA only); see {doc}",
    )


def parse_point(text: str) -> tuple[float, float, int]:
    """'X,Y' or 'X,Y,LABEL' (LABEL 1 = foreground, 0 = background)."""
    values = _numbers(text, (2, 3), "--point")
    label = values[2] if len(values) == 3 else 1.0
    if label not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"--point label must be 1 or 0, got {text!r}")
    return values[0], values[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'X0,Y0,X1,Y1' in image pixels."""
    x0, y0, x1, y1 = _numbers(text, (4,), "--box")
    return x0, y0, x1, y1


# argparse takes "-10,-10" for an option (its negative-number pattern has no commas): also treat
# comma-separated numbers as values, so `--point -10,-10` is a point left of the image.
_NEGATIVE_VALUES = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.eE+-]*(,[-+]?[\d.eE+-]+)+$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = _NEGATIVE_VALUES  # type: ignore[attr-defined]
    parser.add_argument("image", metavar="IMAGE", help="an image file, or a folder of images")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="vit_b, vit_l or vit_h (Meta's weights, downloaded once into the cache), a URL, "
        "or a SAM .pth file",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        help="SAM variant (default: read from the checkpoint's tensor shapes)",
    )
    parser.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help="a prompt point; repeat for several (label 1 = object, 0 = background)",
    )
    parser.add_argument(
        "--box",
        type=parse_box,
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1",
        help="a prompt box; repeat for several objects (one mask each)",
    )
    parser.add_argument("--auto", action="store_true", help="segment everything (no prompts)")
    parser.add_argument("--multimask", action="store_true", help="keep SAM's 3 candidate masks")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda if available)")
    add_precision_argument(parser, "the image encoder and mask upscaling", "docs/speed.md")
    add_limit_arguments(parser)
    auto = parser.add_argument_group("--auto options (Meta's defaults)")
    auto.add_argument("--points-per-side", type=int, default=32)
    auto.add_argument("--points-per-batch", type=int, default=64)
    auto.add_argument("--pred-iou-thresh", type=float, default=0.88)
    auto.add_argument("--stability-score-thresh", type=float, default=0.95)
    auto.add_argument("--box-nms-thresh", type=float, default=0.7)
    auto.add_argument("--crop-n-layers", type=int, default=0)
    auto.add_argument("--min-mask-region-area", type=int, default=0)


def load_model(checkpoint: str, model_name: str | None, device: str | None) -> Any:
    """Read the checkpoint once, pick the variant (given or inferred), build and load it."""
    import torch

    from masktron.model_zoo.sam_checkpoints import resolve_sam_checkpoint
    from masktron.models.sam import (
        infer_sam_variant,
        load_sam_state_dict,
        read_state_dict,
        sam_model_registry,
    )

    checkpoint, known = resolve_sam_checkpoint(checkpoint)
    state_dict = read_state_dict(checkpoint)
    name = model_name or known or infer_sam_variant(state_dict)
    if name is None:
        raise CommandError(f"{checkpoint}: cannot tell the SAM variant; pass --model")
    model = sam_model_registry[name]()
    load_sam_state_dict(model, state_dict, checkpoint)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return model.to(device)
    except (RuntimeError, AssertionError) as e:
        raise CommandError(f"--device {device}: {e}") from None


def run(args: argparse.Namespace) -> int:
    if args.auto and (args.point or args.box):
        args._parser.error("--auto segments everything: drop --point/--box, or drop --auto")
    if not args.auto and not (args.point or args.box):
        args._parser.error("give prompts (--point, --box) or --auto")
    if len(args.box) > 1 and args.point:
        args._parser.error("points go with at most one --box (several boxes: one mask each)")
    from masktron.cli.failures import FailureLog
    from masktron.cli.input_limits import apply_limit_arguments
    from masktron.cli.predict import collect_images

    paths = collect_images([args.image])
    apply_limit_arguments(args)
    model = load_model(args.checkpoint, args.model, args.device)
    if args.precision != "fp32":
        from masktron.models.sam.precision import set_sam_precision

        try:
            set_sam_precision(model, args.precision)
        except ValueError as e:
            raise CommandError(f"--precision {args.precision}: {e}") from None
    used: set[str] = set()  # a.png and a.jpg write a_* and a_1_*
    if not os.path.isdir(args.image):  # one image: its failure is the run's (exit 1)
        segment_file(model, paths[0], args, used)
        return 0
    failures = FailureLog(args.out, what="image")
    for path in paths:
        failures.attempt(path, lambda: segment_file(model, path, args, used))  # noqa: B023
    return failures.finish()


def segment_file(model: Any, path: str, args: argparse.Namespace, used: set[str]) -> None:
    """Read one image, segment it as `args` asks and write its outputs into `args.out`."""
    from masktron.cli.sam_progress import encoder_progress
    from masktron.data import read_image

    image = read_image(path, format="RGB")
    with encoder_progress(model, os.path.basename(path)):
        if args.auto:
            records = _segment_everything(model, image, args)
            prompts: dict[str, Any] = {}
        else:
            records, prompts = _segment_prompts(model, image, args)
    stem = base = os.path.splitext(os.path.basename(path))[0]
    k = 1
    while stem in used:
        stem, k = f"{base}_{k}", k + 1
    used.add(stem)
    write_outputs(args.out, stem, image, records, prompts, args, path)
    print(f"{len(records)} mask(s) of {path} written to {args.out}")


def _segment_prompts(
    model: Any, image: np.ndarray, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from masktron.predictors.sam_predictor import SamPredictor

    predictor = SamPredictor(model)
    predictor.set_image(image)
    points = np.array([p[:2] for p in args.point], dtype=np.float64).reshape(-1, 2)
    labels = np.array([p[2] for p in args.point], dtype=np.int64)
    boxes = np.array(args.box, dtype=np.float64).reshape(-1, 4)
    # A lone point is ambiguous: ask for 3 masks and keep the best unless --multimask.
    multimask = args.multimask or (len(points) == 1 and len(boxes) == 0)
    if len(boxes) > 1:
        masks, ious, _ = predictor.predict_many(boxes=boxes, multimask_output=multimask)
    else:
        masks, ious, _ = predictor.predict(
            point_coords=points if len(points) else None,
            point_labels=labels if len(points) else None,
            box=boxes[0] if len(boxes) else None,
            multimask_output=multimask,
        )
        masks, ious = masks[None], ious[None]  # (C, H, W) -> (1, C, H, W)
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


def _segment_everything(model: Any, image: np.ndarray, args: argparse.Namespace) -> list[dict]:
    from masktron.predictors.auto_mask import SamAutomaticMaskGenerator

    generator = SamAutomaticMaskGenerator(
        model,
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        box_nms_thresh=args.box_nms_thresh,
        crop_n_layers=args.crop_n_layers,
        min_mask_region_area=args.min_mask_region_area,
    )
    return generator.generate(image, progress=True)


def write_outputs(
    out_dir: str,
    stem: str,
    image: np.ndarray,
    records: list[dict[str, Any]],
    prompts: dict[str, Any],
    args: argparse.Namespace,
    image_path: str | None = None,
) -> None:
    """Mask PNGs, the COCO-RLE JSON and the overlay, each written atomically."""
    import pycocotools.mask as mask_utils
    from PIL import Image

    from masktron.cli.input_limits import drawing_scale
    from masktron.utils.file_io import atomic_open
    from masktron.visualization.visualizer import Visualizer

    mask_dir = os.path.join(out_dir, f"{stem}_masks")
    os.makedirs(mask_dir, exist_ok=True)
    for name in os.listdir(mask_dir):  # masks of an earlier run with more masks
        if re.fullmatch(r"\d{3,}\.png", name):
            os.remove(os.path.join(mask_dir, name))
    entries = []
    for i, record in enumerate(records):
        mask = np.asarray(record["segmentation"], dtype=bool)
        file_name = f"{i:03d}.png"
        with atomic_open(os.path.join(mask_dir, file_name), "wb") as f:
            Image.fromarray(mask.astype(np.uint8) * 255).save(f, format="PNG")
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        ys, xs = np.nonzero(mask)
        bbox = [0, 0, 0, 0]
        if len(xs):
            x0, y0 = int(xs.min()), int(ys.min())
            bbox = [x0, y0, int(xs.max()) - x0, int(ys.max()) - y0]
        entry = {"id": i, "file": f"{stem}_masks/{file_name}", "segmentation": rle}
        entry.update({"area": int(mask.sum()), "bbox": bbox})
        entry.update({k: v for k, v in record.items() if k not in ("segmentation", "area", "bbox")})
        entries.append(entry)
    summary = {
        "image": os.path.abspath(image_path or args.image),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "mode": "auto" if args.auto else "prompts",
        "prompts": {k: np.asarray(v).tolist() for k, v in prompts.items() if len(v)},
        "masks": entries,
    }
    with atomic_open(os.path.join(out_dir, f"{stem}_masks.json"), "w") as f:
        json.dump(summary, f)
    h, w = image.shape[:2]
    masks = np.zeros((0, h, w), dtype=bool)
    if records:
        masks = np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])

    def given(key: str) -> np.ndarray | None:
        value = prompts.get(key)
        return value if value is not None and len(value) else None

    scale = drawing_scale(h, w, getattr(args, "max_draw_size", 0))
    overlay = Visualizer(image, scale=scale).draw_sam_masks(
        masks,
        point_coords=given("point_coords"),
        point_labels=given("point_labels"),
        boxes=given("boxes"),
    )
    overlay.save(os.path.join(out_dir, f"{stem}_overlay.png"))

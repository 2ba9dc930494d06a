"""Detect and segment objects in images with a Detectron2-style model.

Writes, into --out: each image drawn with its detections (same file name), `results.json`
(COCO results: boxes XYWH, scores, category ids of the dataset, RLE masks, plus `file_name`),
and for panoptic models `<stem>_panoptic.png` (COCO panoptic RGB-encoded ids) with
`panoptic.json` (segments per image), and `<stem>_sem_seg.png` (class index per pixel).
Proposal-only models (rpn_R_50_*) draw their 100 best proposals and write every proposal to
`proposals.json` (`bbox` XYWH, `objectness_logit`, by image) instead of `results.json`.
Each image's results also go to `predictions.jsonl` as soon as it is done, so `--resume`
continues an interrupted run; `.txt` files list images; under `torchrun --nproc-per-node N`
the images are split over the processes (masktron.cli.predict_stream, docs/speed.md).

Examples:
  masktron predict photo.jpg --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
      --out out/                       # zoo config: its trained weights are downloaded
  masktron predict imgs/ --config my.yaml --weights output/model_final.pth --conf 0.7 --out out/
  masktron predict walk.mp4 --config my.yaml --weights model.pth --track bytetrack --out out/
  masktron predict paths.txt --config my.yaml --weights model.pth --out out/ --workers 3 --resume
  torchrun --nproc-per-node 4 -m masktron predict imgs/ --config my.yaml --weights m.pth --out out/
  masktron predict val/ --config out/config.yaml --weights out/model_best.pth --gt val.json \
      --out pred/                # then: masktron eval --gt val.json --results pred/results.json

One bad file costs only itself: an image that cannot be read or processed is reported in one
line (file, reason), listed in `failed.json`, and the others still run; the exit code is 0 when
every image succeeded, else 1 after a summary. Images over --max-pixels are refused before
decoding (decompression bombs); drawings are downscaled to --max-draw-size (results stay in
original pixels). See docs/reliability.md.

A run folder of `masktron train` is self-contained: its config.yaml names the classes (labels,
dataset category ids) and registers its datasets. Config overrides are trailing KEY VALUE pairs
or follow --opts; they win over the flags (`--conf 0.7 MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.3`
keeps 0.3), which win over the config file.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from masktron.cli import predict_stream, predict_video
from masktron.cli.failures import FailureLog
from masktron.cli.input_limits import (
    add_limit_arguments,
    apply_limit_arguments,
    drawing_scale,
    unit_interval,
)
from masktron.cli.main import CommandError
from masktron.cli.run_config import (
    add_override_arguments,
    build_config,
    collect_overrides,
    split_trailing_overrides,
)

_DRAWN_PROPOSALS = 100  # the best ones; a drawing of 1000 boxes shows nothing
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="images or folders")
    parser.add_argument(
        "--config",
        help="a YAML config file, or a model-zoo name such as "
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml (required unless --onnx)",
    )
    parser.add_argument(
        "--onnx",
        metavar="MODEL.onnx",
        help="run a detector exported by `masktron export --format onnx` in onnxruntime",
    )
    parser.add_argument(
        "--weights",
        help="checkpoint path or URL (https://, detectron2://); default: the zoo's trained weights "
        "for a zoo config, else the config's MODEL.WEIGHTS",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--conf", type=unit_interval, default=0.5, help="minimum score in [0, 1] (default 0.5)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: MODEL.DEVICE)")
    parser.add_argument(
        "--gt",
        metavar="JSON_OR_DATASET",
        help="ground truth (COCO JSON or a registered dataset) the images belong to: results "
        "get its image ids, so `masktron eval --gt` scores them",
    )
    parser.add_argument(
        "--no-labels", action="store_true", help="draw masks and boxes without class labels"
    )
    add_limit_arguments(parser)
    add_override_arguments(parser, trailing=False)  # trailing pairs: see split_trailing_overrides
    predict_video.add_arguments(parser)  # videos, webcams, frame folders: see predict_video
    predict_stream.add_arguments(parser)  # many images, workers, --resume, torchrun


def setup_cfg(args: argparse.Namespace) -> Any:
    """The config of a run: file or zoo name, flags (weights, score threshold, device) and the
    overrides, which win over the flags (masktron.cli.run_config gives the order)."""
    from masktron import model_zoo

    take_trailing_overrides(args)
    overrides = collect_overrides(args)
    # The same threshold for every family, as Detectron2's demo does.
    flags = dict.fromkeys(_THRESHOLD_KEYS, args.conf)
    flags |= {"MODEL.WEIGHTS": args.weights or None, "MODEL.DEVICE": args.device}
    cfg, zoo_name = build_config(args.config, overrides, flags)
    weights_given = args.weights or "MODEL.WEIGHTS" in overrides[0::2]
    if not weights_given and zoo_name is not None and _key(zoo_name) in model_zoo.ZOO:
        cfg.MODEL.WEIGHTS = model_zoo.get_checkpoint_url(zoo_name)
    if not cfg.MODEL.WEIGHTS:
        raise CommandError("no weights: pass --weights PATH_OR_URL (or set MODEL.WEIGHTS)")
    if "ImageNetPretrained" in cfg.MODEL.WEIGHTS or "torchvision://" in cfg.MODEL.WEIGHTS:
        logger.warning(
            "MODEL.WEIGHTS (%s) is an ImageNet backbone only: the detector is untrained. Pass "
            "--weights with trained weights, or give --config as a model-zoo name",
            cfg.MODEL.WEIGHTS,
        )
    return cfg


def take_trailing_overrides(args: argparse.Namespace) -> None:
    """Move KEY VALUE pairs given among the inputs (`predict a.jpg KEY VALUE ...`) to the
    overrides (idempotent)."""
    args.inputs, trailing = split_trailing_overrides(getattr(args, "inputs", None) or [])
    args.extra_opts = trailing + list(getattr(args, "extra_opts", None) or [])


_THRESHOLD_KEYS = (
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "MODEL.RETINANET.SCORE_THRESH_TEST",
    "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH",
)


def _key(zoo_name: str) -> str:
    return zoo_name[: -len(".yaml")] if zoo_name.endswith(".yaml") else zoo_name


def collect_images(inputs: Sequence[str]) -> list[str]:
    """Image files named directly, found (non-recursively, sorted) in the folders given, or
    listed in .txt files (`predict_stream.read_path_list`)."""
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, f)
                for f in os.listdir(item)
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise CommandError(f"{item}: no images ({', '.join(IMAGE_EXTENSIONS)}) in folder")
            paths.extend(found)
        elif os.path.isfile(item) and item.lower().endswith(predict_stream.PATH_LIST_EXTENSIONS):
            paths.extend(predict_stream.read_path_list(item))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise CommandError(f"{item}: no such file or folder")
    return paths


def _unique_name(path: str, used: set[str]) -> str:
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    name, k = base, 1
    while name in used:
        name, k = f"{stem}_{k}{ext}", k + 1
    used.add(name)
    return name


def predict_images(
    predictor: Any,
    metadata: Any,
    paths: Sequence[str],
    out_dir: str,
    *,
    image_ids: Sequence[Any] | None = None,
    labels: bool = True,
    failures: FailureLog | None = None,
    max_draw_size: int = 0,
) -> tuple[int, list[str]]:
    """Run `predictor` on each image and write drawings and results into `out_dir`.

    Each image is isolated: one that cannot be read or processed is reported (`failures`) and
    the others still run.

    Args:
        image_ids: the `image_id` of each image in the results (default 1..N).
        labels: draw class names and scores.
        failures: collects the images that failed (default: a log that writes no file).
        max_draw_size: downscale drawings so their long side is at most this (0: full size);
            results stay in original-image pixels.

    Returns:
        (number of images done, one message per image that failed).
    """
    from tqdm import tqdm

    from masktron.data import read_image
    from masktron.utils.file_io import write_json

    os.makedirs(out_dir, exist_ok=True)
    failures = failures if failures is not None else FailureLog(None, what="image")
    results: list[dict] = []
    panoptic: list[dict] = []
    used: set[str] = set()
    done = failures.succeeded

    def one(image_id: Any, path: str) -> None:
        bgr = read_image(path, format="BGR")
        outputs = predictor(bgr)
        name = _unique_name(path, used)
        image_results: list[dict] = []  # kept only once the whole image succeeded
        image_panoptic: list[dict] = []
        scale = drawing_scale(bgr.shape[0], bgr.shape[1], max_draw_size)
        _write_outputs(
            outputs, bgr[:, :, ::-1], metadata, out_dir, name, image_id, image_results,
            image_panoptic, labels, scale=scale,
        )  # fmt: skip
        results.extend(image_results)
        panoptic.extend(image_panoptic)

    for index, path in enumerate(tqdm(paths, desc="predict", unit="img")):
        image_id = image_ids[index] if image_ids is not None else index + 1
        failures.attempt(path, lambda: one(image_id, path))  # noqa: B023 (called at once)
    write_json(os.path.join(out_dir, _results_name(predictor)), results)
    if panoptic:
        write_json(os.path.join(out_dir, "panoptic.json"), {"annotations": panoptic})
    messages = [f"{f['file']}: {f['reason']}" for f in failures.failed]
    return failures.succeeded - done, messages


def _results_name(predictor: Any) -> str:
    """Proposal-only models write proposals, not COCO results (they have no classes)."""
    cfg = getattr(predictor, "cfg", None)
    if cfg is not None and cfg.MODEL.META_ARCHITECTURE == "ProposalNetwork":
        return "proposals.json"
    return "results.json"


def _dataset_ids(metadata: Any, key: str) -> dict[int, int]:
    mapping = metadata.get(key) if metadata is not None else None
    return {v: k for k, v in mapping.items()} if mapping else {}


def _write_outputs(
    outputs: dict,
    rgb: np.ndarray,
    metadata: Any,
    out_dir: str,
    name: str,
    image_id: int,
    results: list[dict],
    panoptic: list[dict],
    draw_labels: bool = True,
    scale: float = 1.0,
) -> None:
    from masktron.evaluation.coco_evaluation import instances_to_coco_json
    from masktron.visualization.visualizer import Visualizer

    stem = os.path.splitext(name)[0]
    visualizer = Visualizer(rgb, metadata, scale=scale)
    if "panoptic_seg" in outputs:
        seg, segments = outputs["panoptic_seg"]
        seg = seg.to("cpu")
        vis = visualizer.draw_panoptic_seg(seg, segments)
        panoptic.append(_write_panoptic(seg.numpy(), segments, metadata, out_dir, stem, image_id))
    elif "sem_seg" in outputs:
        vis = visualizer.draw_sem_seg(outputs["sem_seg"].argmax(dim=0).to("cpu"))
    elif "proposals" in outputs:
        proposals = outputs["proposals"].to("cpu")
        vis = visualizer.overlay_instances(boxes=proposals.proposal_boxes[:_DRAWN_PROPOSALS])
        xywh = proposals.proposal_boxes.tensor.clone()
        xywh[:, 2:] -= xywh[:, :2]  # XYXY -> XYWH
        for box, logit in zip(xywh.tolist(), proposals.objectness_logits.tolist()):
            record = {"image_id": image_id, "file_name": name, "bbox": box}
            results.append(record | {"objectness_logit": logit})
    elif draw_labels:
        vis = visualizer.draw_instance_predictions(outputs["instances"].to("cpu"))
    else:
        vis = _draw_unlabelled(visualizer, outputs["instances"].to("cpu"))
    if "sem_seg" in outputs:
        labels = outputs["sem_seg"].argmax(dim=0).to("cpu").numpy()
        _save_png(
            labels.astype(np.uint16 if labels.max() > 255 else np.uint8),
            out_dir,
            stem + "_sem_seg.png",
        )
    vis.save(os.path.join(out_dir, name))
    if "instances" in outputs:
        to_dataset = _dataset_ids(metadata, "thing_dataset_id_to_contiguous_id")
        for r in instances_to_coco_json(outputs["instances"].to("cpu"), image_id):
            r["category_id"] = to_dataset.get(r["category_id"], r["category_id"])
            r["file_name"] = name
            results.append(r)


def _draw_unlabelled(visualizer: Any, instances: Any) -> Any:
    """Masks and boxes in their class colours, without the class/score text."""
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    boxes = instances.pred_boxes if instances.has("pred_boxes") else None
    return visualizer.overlay_instances(boxes=boxes, masks=masks)


def _save_png(array: np.ndarray, out_dir: str, name: str) -> None:
    from PIL import Image

    from masktron.utils.file_io import atomic_open

    with atomic_open(os.path.join(out_dir, name), "wb") as f:
        Image.fromarray(array).save(f, format="PNG")


def _write_panoptic(
    seg: np.ndarray, segments: list[dict], metadata: Any, out_dir: str, stem: str, image_id: int
) -> dict:
    """Save the id map as a COCO panoptic PNG; return the image's annotation record."""
    from masktron.evaluation.panoptic_pq import id_to_rgb

    _save_png(id_to_rgb(seg.astype(np.int64)).astype(np.uint8), out_dir, stem + "_panoptic.png")
    things = _dataset_ids(metadata, "thing_dataset_id_to_contiguous_id")
    stuff = _dataset_ids(metadata, "stuff_dataset_id_to_contiguous_id")
    info = []
    for s in segments:
        s = dict(s)
        table = things if s.get("isthing") else stuff
        s["category_id"] = table.get(s["category_id"], s["category_id"])
        info.append({k: (float(v) if isinstance(v, np.floating) else v) for k, v in s.items()})
    return {"image_id": image_id, "file_name": stem + "_panoptic.png", "segments_info": info}


def run(args: argparse.Namespace) -> int:
    if args.onnx:
        from masktron.cli.predict_onnx import run_onnx

        return run_onnx(args)
    if not args.config:
        args._parser.error("--config is required (or --onnx MODEL.onnx)")
    from masktron.cli.predict_gt import ground_truth_ids

    take_trailing_overrides(args)  # before telling videos from images by the inputs
    if predict_video.is_video_request(args):
        predict_stream.refuse_under_torchrun("videos")
        return predict_video.run(args)
    cfg = setup_cfg(args)
    paths = collect_images(args.inputs)
    apply_limit_arguments(args)
    image_ids = ground_truth_ids(args.gt, paths) if args.gt else None
    # DataLoader workers, predictions.jsonl, --resume, torchrun: see predict_stream
    return predict_stream.run(args, cfg, paths, image_ids)

"""`masktron predict` on video: detect, segment and track objects frame by frame.

Inputs: a video file (mp4, avi, mov, mkv, webm, ...), a webcam index (`0`), or a folder of frames
with `--track`. For each input, writes into --out:
  `<name>.mp4`        the frames drawn, masks in one colour per track id, labels "#id class score"
  `<name>.json`       COCO-style results: `images` (one per frame read, with `frame_id` and
                      `time`), `annotations` (bbox XYWH, score, RLE `segmentation`, `track_id`),
                      `categories`
  `<name>_mot.txt`    MOTChallenge boxes: frame (from 1), id, left, top, width, height, score
Tracking is a step after `DefaultPredictor`: `--track bytetrack` (default: ByteTrack with a
Kalman motion model), `iou` (Detectron2's BBoxIOUTracker), `hungarian` (Detectron2's
IOUWeightedHungarianBBoxIOUTracker), or `none`. Other tracker settings are TRACKER_HEADS.*
config keys (`--opts TRACKER_HEADS.MATCH_METRIC mask`).

Examples:
  masktron predict walk.mp4 --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
      --track bytetrack --out out/
  masktron predict walk.mp4 --config my.yaml --weights model.pth --every 2 --start 0:05 \\
      --end 0:20 --out out/
  masktron predict frames/ --track iou --fps 10 --config my.yaml --weights m.pth --out out/
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from masktron.cli.main import CommandError

# --track NAME: masktron.tracking.build.SHORT_NAMES, or none (not imported here: the parser is
# built for every command, and the tracking package imports torch)
TRACK_CHOICES = ("bytetrack", "iou", "hungarian", "none")
logger = logging.getLogger(__name__)


def parse_time(text: str) -> float:
    """Seconds from "12.5", "1:30" or "1:02:03.5" (an argparse type: bad text exits with 2)."""
    try:
        seconds = 0.0
        for part in text.strip().split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (use seconds or [h:]m:s)") from None
    if seconds < 0 or text.count(":") > 2:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (use seconds or [h:]m:s)")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The video options of `masktron predict`."""
    group = parser.add_argument_group(
        "video", "for a video file, a webcam index (0, 1, ...), or a folder of frames with --track"
    )
    group.add_argument(
        "--track",
        choices=TRACK_CHOICES,
        help="tracker (default for videos: bytetrack); 'none' draws detections without ids",
    )
    group.add_argument("--every", type=_positive_int, default=1, help="use one frame in N")
    group.add_argument("--start", type=parse_time, default=0.0, help="start time (s or m:s)")
    group.add_argument("--end", type=parse_time, help="end time (s or m:s; default: the end)")
    group.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 30)")


def is_video_request(args: argparse.Namespace) -> bool:
    """Whether `masktron predict` was given videos (or --track) rather than images."""
    from masktron.data.video_sources import is_video_file

    return getattr(args, "track", None) is not None or any(
        is_video_file(p) or str(p).isdigit() for p in args.inputs
    )


def run(args: argparse.Namespace) -> int:
    from masktron.cli.predict import setup_cfg
    from masktron.data.run_datasets import config_metadata
    from masktron.engine import DefaultPredictor

    sources = _check_sources(args)
    if args.end is not None and args.end <= args.start:
        raise CommandError(f"--end {args.end:g}s must come after --start {args.start:g}s")
    cfg = setup_cfg(args)
    predictor = DefaultPredictor(cfg)
    metadata = config_metadata(cfg)  # class names and dataset ids, as predict on images
    tracker_name = args.track or "bytetrack"
    used: set[str] = set()  # two inputs named alike write walk.*, walk_1.*
    for source in sources:
        done, problem = predict_video(predictor, cfg, metadata, source, args, tracker_name, used)
        print(f"{source}: {done} frame(s) -> {args.out}")
        if problem:
            raise CommandError(f"{problem}; wrote the {done} frame(s) read before it to {args.out}")
    return 0


def _check_sources(args: argparse.Namespace) -> list[str]:
    from masktron.data.video_sources import is_video_file

    sources = []
    for item in args.inputs:
        if str(item).isdigit() or os.path.isdir(item) or is_video_file(item):
            if not str(item).isdigit() and not os.path.exists(item):
                raise CommandError(f"{item}: no such file or folder")
            sources.append(str(item))
        else:
            raise CommandError(
                f"{item}: not a video ({', '.join(VIDEO_EXTENSIONS_HINT)}), a webcam index or a "
                "folder of frames; predict images and videos in separate runs"
            )
    return sources


VIDEO_EXTENSIONS_HINT = (".mp4", ".avi", ".mov", ".mkv", "...")


def _make_tracker(cfg: Any, name: str, info: Any, fps: float) -> Any:
    from masktron.tracking.build import SHORT_NAMES, build_tracker_head

    if name == "none":
        return None
    tracker_cfg = cfg.clone()
    heads = tracker_cfg.TRACKER_HEADS
    heads.TRACKER_NAME = SHORT_NAMES[name]
    heads.VIDEO_HEIGHT, heads.VIDEO_WIDTH = info.height, info.width
    heads.FRAME_RATE = fps  # ByteTracker's track_buffer is in frames at 30 frame/s
    try:
        return build_tracker_head(tracker_cfg)
    except (TypeError, ValueError) as e:
        raise CommandError(f"tracker {name}: {e}") from None


def predict_video(
    predictor: Any,
    cfg: Any,
    metadata: Any,
    source: str,
    args: Any,
    tracker_name: str,
    used_names: set[str] | None = None,
) -> tuple[int, str | None]:
    """Predict, track, draw and write one video (see the module docstring).

    Returns:
        (frames done, a message when the source broke or None).
    """
    import torch
    from tqdm import tqdm

    from masktron.cli.video_outputs import TrackWriter
    from masktron.data.video import VideoDecodeError, VideoReader

    try:
        reader = VideoReader(source, fps=args.fps, start=args.start, end=args.end, every=args.every)
    except VideoDecodeError as e:
        raise CommandError(str(e)) from None
    info = reader.info
    used = used_names if used_names is not None else set()
    name, k = info.name, 1
    while name in used:
        name, k = f"{info.name}_{k}", k + 1
    used.add(name)
    info.name = name
    fps = info.fps / args.every
    tracker = _make_tracker(cfg, tracker_name, info, fps)
    label = None if tracker is None else tracker_name
    draw_labels = not getattr(args, "no_labels", False)
    writer = TrackWriter(
        args.out, info, fps=fps, metadata=metadata, tracker=label, labels=draw_labels
    )
    problem = None
    bar = tqdm(total=reader.expected_frames, desc=info.name, unit="frame")
    try:
        for frame in reader:
            outputs = predictor(frame.image)
            if "instances" not in outputs:
                raise CommandError("video prediction needs a model with instance outputs")
            instances = outputs["instances"].to("cpu")
            if tracker is not None:  # drop instances carried over from earlier frames
                instances = tracker.update(instances)
                current = [k for k, lost in enumerate(instances.lost_frame_count) if lost == 0]
                instances = instances[torch.as_tensor(current, dtype=torch.int64)]
            writer.add(frame, instances)
            bar.update(1)
    except VideoDecodeError as e:
        problem = str(e)
    except KeyboardInterrupt:
        if not reader.live:
            raise
        print(f"{source}: stopped")  # Ctrl-C is how a webcam run ends
    finally:
        bar.close()
        reader.close()
        writer.close()  # what was done is written, whatever stopped the loop
    return writer.frames, problem

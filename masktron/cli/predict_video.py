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
IOUWeightedHungarianBBoxIOUTracker), `sam2` (the detector seeds SAM 2's video tracker with its
boxes: masktron.cli.predict_video_sam2), or `none`. Other tracker settings are TRACKER_HEADS.*
config keys (`--opts TRACKER_HEADS.MATCH_METRIC mask`).

One bad input costs only itself: a video that cannot be opened or breaks while decoding, and a
frame whose prediction fails (`walk.mp4: frame 17: <reason>`, left out of the outputs; 10 in a
row stop that video), are reported and the video is listed in `failed.json`; the other inputs
and frames still run; exit code 1 after a summary (0 when all succeeded). See
docs/reliability.md.

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
import sys
from typing import Any

from masktron.cli import predict_video_sam2
from masktron.cli.failures import FailureLog, one_line_reason
from masktron.cli.main import CommandError
from masktron.data.video_sources import VideoDecodeError

# --track NAME: masktron.tracking.build.SHORT_NAMES, or none (not imported here: the parser is
# built for every command, and the tracking package imports torch)
TRACK_CHOICES = ("bytetrack", "iou", "hungarian", "sam2", "none")
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
    predict_video_sam2.add_arguments(group)  # --track sam2: the detector seeds SAM 2


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
    failures = FailureLog(args.out, what="video")
    if tracker_name == "sam2":
        predict_video_sam2.predict_sources_sam2(predictor, cfg, metadata, sources, args, failures)
        return failures.finish()
    predict_sources(predictor, cfg, metadata, sources, args, tracker_name, failures)
    return failures.finish()


def predict_sources(
    predictor: Any,
    cfg: Any,
    metadata: Any,
    sources: list[str],
    args: Any,
    tracker_name: str,
    failures: FailureLog,
) -> None:
    """`predict_video` on each source in isolation: a source that cannot be opened, breaks
    while decoding or has frames whose prediction failed is reported and listed in `failures`
    (`failed.json`); the others still run. A `CommandError` (the model or the tracker cannot do
    videos at all) ends the run."""
    used: set[str] = set()  # two inputs named alike write walk.*, walk_1.*

    def one(source: str) -> None:
        done, problem = predict_video(predictor, cfg, metadata, source, args, tracker_name, used)
        print(f"{source}: {done} frame(s) -> {args.out}")
        if problem:
            raise VideoDecodeError(problem)

    for source in sources:
        failures.attempt(source, lambda: one(source), reraise=(CommandError,))  # noqa: B023


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
        (frames written, None, or a message when the source broke or frames failed).
    """
    import torch
    from tqdm import tqdm

    from masktron.cli.video_outputs import TrackWriter
    from masktron.data.video import VideoReader

    reader = VideoReader(source, fps=args.fps, start=args.start, end=args.end, every=args.every)
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
    failed = _FailedFrames(source)
    bar = tqdm(total=reader.expected_frames, desc=info.name, unit="frame")
    try:
        for frame in reader:
            try:
                outputs = predictor(frame.image)
            except Exception as e:  # this frame's alone: reported, left out, the video goes on
                if os.environ.get("MASKTRON_DEBUG"):
                    raise
                problem = failed.add(frame.index, e)
                bar.update(1)
                if problem:
                    break
                continue
            failed.in_a_row = 0
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
    done = writer.frames
    if problem:
        return done, f"{problem}; wrote the {done} frame(s) read before it to {args.out}"
    if failed.indices:
        return done, f"{failed.summary()}; wrote the other {done} frame(s) to {args.out}"
    return done, None


class _FailedFrames:
    """The frames of one video whose prediction failed: each is reported in one line
    (`walk.mp4: frame 17: <reason>`) and left out of the outputs; `MAX_IN_A_ROW` consecutive
    failures stop the video (the model is failing on it, not on a frame)."""

    MAX_IN_A_ROW = 10

    def __init__(self, source: str):
        self.source = source
        self.indices: list[int] = []
        self.first = ""
        self.in_a_row = 0

    def add(self, index: int, error: Exception) -> str | None:
        """Record a failed frame; a message when the video should stop."""
        from tqdm import tqdm

        reason = one_line_reason(error, self.source)
        tqdm.write(f"{self.source}: frame {index}: {reason}", file=sys.stderr)
        self.first = self.first or f"frame {index}: {reason}"
        self.indices.append(index)
        self.in_a_row += 1
        if self.in_a_row < self.MAX_IN_A_ROW:
            return None
        return f"stopped after {self.in_a_row} frames in a row failed (first: {self.first})"

    def summary(self) -> str:
        shown = ", ".join(map(str, self.indices[:10])) + (", ..." if len(self.indices) > 10 else "")
        return f"{len(self.indices)} frame(s) failed and were left out ({shown}; {self.first})"

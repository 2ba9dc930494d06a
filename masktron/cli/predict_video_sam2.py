"""`masktron predict VIDEO --track sam2`: the detector seeds SAM 2, which tracks the masks.

The detector of `--config`/`--weights` runs on the first frame and every `--detect-every`
frames; its detections (score >= --conf) not already covered by a tracked mask become SAM 2
objects prompted with their boxes (`masktron.tracking.sam2_seeded`). The outputs are those of
the other trackers (`<name>.mp4`, `<name>.json` with `track_id`, `<name>_mot.txt`), the masks
being SAM 2's. Videos and folders of frames only: SAM 2 reads frames out of order.

  masktron predict walk.mp4 --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
      --track sam2 --sam2-checkpoint sam2.1_hiera_tiny.pt --out out/
"""

from __future__ import annotations

import argparse
from typing import Any

from masktron.cli.main import CommandError

__all__ = ["add_arguments", "predict_sources_sam2"]


def add_arguments(group: Any) -> None:
    """The `--track sam2` options (added to predict's video group)."""
    group.add_argument(
        "--sam2-checkpoint", metavar="PT", help="SAM 2 weights for --track sam2 (Meta's .pt)"
    )
    group.add_argument(
        "--sam2-config",
        metavar="NAME",
        help="SAM 2 variant, e.g. sam2.1_hiera_t.yaml (default: read from the checkpoint)",
    )
    group.add_argument(
        "--detect-every",
        type=int,
        default=10,
        metavar="N",
        help="with --track sam2: run the detector every N frames to add new objects (default 10)",
    )


def predict_sources_sam2(
    detector: Any,
    cfg: Any,
    metadata: Any,
    sources: list[str],
    args: argparse.Namespace,
    failures: Any,
) -> None:
    """Track each source with SAM 2 seeded by `detector`; one failing source costs only itself."""
    from masktron.predictors.sam2_video import build_sam2_video_predictor

    if not args.sam2_checkpoint:
        raise CommandError("--track sam2 needs --sam2-checkpoint (SAM 2 weights, Meta's .pt)")
    if args.detect_every < 1:
        raise CommandError(f"--detect-every must be >= 1, got {args.detect_every}")
    for source in sources:
        if str(source).isdigit():
            raise CommandError(f"{source}: --track sam2 needs a video file or a folder of frames")
    if args.every != 1 or args.start or args.end is not None:
        raise CommandError("--track sam2 tracks whole videos: drop --every, --start and --end")
    device = getattr(args, "device", None) or cfg.MODEL.DEVICE
    try:
        sam2 = build_sam2_video_predictor(args.sam2_config, args.sam2_checkpoint, device=device)
    except (OSError, ValueError, KeyError) as e:
        raise CommandError(f"--sam2-checkpoint {args.sam2_checkpoint}: {e}") from None
    used: set[str] = set()
    for source in sources:
        failures.attempt(
            source,
            lambda: _one(sam2, detector, metadata, source, args, used),  # noqa: B023
            reraise=(CommandError,),
        )


def _one(
    sam2: Any, detector: Any, metadata: Any, source: str, args: argparse.Namespace, used: set
) -> None:
    import numpy as np
    from tqdm import tqdm

    from masktron.cli.video_outputs import TrackWriter
    from masktron.data.video import VideoFrame, VideoInfo
    from masktron.tracking.sam2_seeded import SAM2SeededTracker

    tracker = SAM2SeededTracker(
        sam2, detector, score_thresh=args.conf, detect_every=args.detect_every
    )
    results = tracker.track(source)
    first = next(results)  # opens the video: its size and rate are known from here
    frames = tracker.state["images"]
    fps = args.fps or frames.fps or 30.0
    name, k = frames.name, 1
    while name in used:
        name, k = f"{frames.name}_{k}", k + 1
    used.add(name)
    info = VideoInfo(name, fps, frames.video_width, frames.video_height, len(frames))
    writer = TrackWriter(
        args.out, info, fps=fps, metadata=metadata, tracker="sam2",
        labels=not getattr(args, "no_labels", False),
    )  # fmt: skip
    bar = tqdm(total=len(frames), desc=name, unit="frame")
    try:
        for frame_idx, instances in _chain(first, results):
            bgr = np.ascontiguousarray(frames.original(frame_idx)[:, :, ::-1])
            writer.add(VideoFrame(frame_idx, frame_idx / fps, bgr), instances)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
        frames.close()
    print(f"{source}: {writer.frames} frame(s) -> {args.out}")


def _chain(first: Any, rest: Any) -> Any:
    yield first
    yield from rest

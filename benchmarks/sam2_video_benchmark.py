"""SAM 2 video propagation speed: masktron vs Meta's `sam2`, same weights, frames and threads.

Meta's package is a baseline only (the `parity` extra), never a masktron dependency:

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"
    python benchmarks/sam2_video_benchmark.py [--variant sam2.1_hiera_t] [--frames 8]
        [--threads 2] [--checkpoint sam2.1_hiera_tiny.pt] [--video FOLDER_OR_FILE]

Without --checkpoint both load the parity-fixture weights of the variant (written in Meta's
`{"model": ...}` format by tests/sam2_fixtures_util.py). The case is the parity test's: a click
and a box on frame 0 of the bedroom frames (../shared/data/video_bedroom), tracked over
--frames frames. Timed: `propagate_in_video` alone (frames/s; prompts and `init_state` apart),
Meta in fp32 and under `torch.autocast("cpu", torch.bfloat16)` (how Meta's examples run it in
reduced precision), masktron fp32 and masktron bf16 (`set_sam2_precision`) alternating for --rounds
rounds, so a change of machine load hits every side. Meta's CPU build skips its hole filling (no
CUDA extension), masktron fills holes: the masks are compared (IoU with Meta's, and bf16 with
fp32) so that a speed-up never hides a different result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "models" / "sam2")]

import sam2_video_cases as cases  # noqa: E402
from sam2_fixtures_util import SHARED, meta_config_name, sam2_fixture_checkpoint  # noqa: E402

from masktron.models.sam2.precision import set_sam2_precision  # noqa: E402
from masktron.predictors.sam2_video import build_sam2_video_predictor  # noqa: E402

LABELS = {
    "meta": "Meta fp32",
    "meta_bf16": "Meta bf16",
    "masktron": "masktron fp32",
    "masktron_bf16": "masktron bf16",
}


def propagate(predictor, source: str, frames: int, autocast: bool) -> tuple[float, np.ndarray]:
    """Seconds spent in `propagate_in_video` over `frames` frames, and the (F, 2, H, W) masks."""
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        return _propagate(predictor, source, frames)


def _propagate(predictor, source: str, frames: int) -> tuple[float, np.ndarray]:
    state = predictor.init_state(source)
    (x, y), label = cases.CLICK
    predictor.add_new_points_or_box(state, 0, 1, points=[[x, y]], labels=[label])
    predictor.add_new_points_or_box(state, 0, 2, box=list(cases.BOX))
    masks = []
    start = time.perf_counter()
    for _, _, logits in predictor.propagate_in_video(state, max_frame_num_to_track=frames - 1):
        masks.append((logits[:, 0] > 0).cpu().numpy())
    return time.perf_counter() - start, np.stack(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="sam2.1_hiera_t", choices=cases.VARIANTS)
    parser.add_argument("--checkpoint", help="a SAM 2 .pt (default: the fixture weights)")
    parser.add_argument("--video", help="a folder of frames or a video file (default: bedroom)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Meta's missing-extension notice
    from sam2.build_sam import build_sam2_video_predictor as build_meta

    checkpoint = args.checkpoint or str(sam2_fixture_checkpoint(args.variant))
    source = args.video or cases.bedroom_frames(SHARED, args.frames)
    meta = build_meta(meta_config_name(args.variant), checkpoint, device="cpu")
    predictors = {
        "meta": meta,
        "meta_bf16": meta,  # the same model, run under autocast (every run starts a new state)
        "masktron": build_sam2_video_predictor(None, checkpoint),
        "masktron_bf16": build_sam2_video_predictor(None, checkpoint),
    }
    set_sam2_precision(predictors["masktron_bf16"].model, "bf16")
    times: dict[str, list[float]] = {name: [] for name in predictors}
    masks: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, predictor in predictors.items():
            seconds, masks[name] = propagate(predictor, source, args.frames, name == "meta_bf16")
            times[name].append(seconds)
            print(f"  {name}: {args.frames / seconds:.3f} frames/s", flush=True)
    fps = {name: args.frames / statistics.median(t) for name, t in times.items()}

    def min_iou(a: str, b: str) -> float:
        pairs = zip(masks[a], masks[b])
        return min(cases.mask_iou(x, y) for fa, fb in pairs for x, y in zip(fa, fb))

    print(
        f"{args.variant}, {args.frames} frames, 2 objects, {args.threads} threads "
        f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}), median of {args.rounds}:"
    )
    for name, label in LABELS.items():
        ratio = fps[name] / fps["meta"]
        line = f"  {label:<14} {fps[name]:.3f} frames/s   ratio {ratio:.2f}x"
        if name != "meta":
            line += f"   min mask IoU with Meta {min_iou(name, 'meta'):.4f}"
        print(line)
    print(f"  bf16 vs fp32 min mask IoU {min_iou('masktron_bf16', 'masktron'):.4f}")
    print("  ratio = side / Meta fp32 (goal >= 1.5x)")
    ratio = fps["masktron_bf16"] / fps["meta_bf16"]
    print(f"  at each one's bf16: masktron bf16 {ratio:.2f}x Meta's autocast")


if __name__ == "__main__":
    main()

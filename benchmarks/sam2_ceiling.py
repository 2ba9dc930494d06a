"""How fast can masktron's SAM 2 get against Meta's in float32 without changing a single output?

    python benchmarks/sam2_ceiling.py [--variant sam2.1_hiera_t] [--image-size 1024]
        [--frames 8] [--threads 1] [--skip-video]

Both sides run the same compute kernels on the same shapes for the bulk of the work: matrix
products (`addmm`, `mm`, `bmm`), PyTorch's fused attention, convolutions, GELU and LayerNorm.
masktron keeps its float32 outputs bit-identical, so it cannot make those kernels cheaper; it
can only remove the work around them (copies, extra passes, recomputation). This script
profiles one `forward_image` (Hiera + neck at `--image-size`) and one `propagate_in_video`
(the video benchmark's click + box on the bedroom frames, `--frames` frames) of each side with
torch.profiler, and prints per side the profiled CPU time, the part spent in those shared
kernels, and

    ceiling = Meta's total / masktron's time in the shared kernels

the ratio masktron would reach if everything else it does took no time at all. A goal above the
ceiling needs different arithmetic (bf16: `set_sam2_precision`), not a faster implementation.
One thread by default: profiles of several threads on a loaded machine count spin waits.
Meta's `sam2` is a baseline only (the `parity` extra), never a masktron dependency.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "models" / "sam2")]

from sam2_fixtures_util import SHARED, build_meta_sam2, sam2_fixture_checkpoint  # noqa: E402

# aten kernels both implementations call with the same shapes (self time, children excluded:
# the bias copy of `addmm` counts as overhead, it is a separate `copy_`)
SHARED_KERNELS = (
    "aten::addmm",
    "aten::mm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::mkldnn_convolution",
    "aten::_slow_conv2d_forward",
    "aten::gelu",
    "aten::native_layer_norm",
)


def profiled(fn: Callable[[], object]) -> tuple[float, float]:
    """(total self CPU seconds, seconds in SHARED_KERNELS) of one call of fn."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    kernels = sum(e.self_cpu_time_total for e in events if e.key in SHARED_KERNELS) / 1e6
    return total, kernels


def report(title: str, meta: tuple[float, float], ours: tuple[float, float]) -> None:
    print(title)
    for label, (total, kernels) in (("Meta fp32", meta), ("masktron fp32", ours)):
        print(
            f"  {label:<14} profiled {total:7.2f} s, shared kernels {kernels:7.2f} s "
            f"({kernels / total:.0%}), other {total - kernels:6.2f} s"
        )
    print(
        f"  ratio now {meta[0] / ours[0]:.2f}x; ceiling (masktron's other work at 0 s) "
        f"{meta[0] / ours[1]:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-video", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Meta's missing-extension notice
    import sam2_video_cases as cases
    from sam2_video_benchmark import propagate  # the video benchmark's case

    from masktron.models.sam2.build import build_sam2_model
    from masktron.models.sam2.checkpoint import load_sam2_state_dict, read_sam2_state_dict
    from masktron.predictors.sam2_video import SAM2VideoPredictor

    ckpt = sam2_fixture_checkpoint(args.variant)
    with torch.device("meta"):  # no random init: the checkpoint's tensors are assigned
        model = build_sam2_model(args.variant, video=True, image_size=args.image_size)
    load_sam2_state_dict(model, read_sam2_state_dict(ckpt), ckpt, assign=True)
    ours = SAM2VideoPredictor(model.eval())
    meta = build_meta_sam2(args.variant, video=True, image_size=args.image_size)
    load = os.getloadavg()[0]
    print(
        f"{args.variant} at {args.image_size} px, {args.threads} thread(s), "
        f"{os.cpu_count()} CPUs, load {load:.1f}"
    )
    image = torch.randn(1, 3, args.image_size, args.image_size)
    with torch.inference_mode():
        meta.forward_image(image)  # warm-up: caches, allocator
        ours.model.forward_image(image)
        report(
            "forward_image:",
            profiled(lambda: meta.forward_image(image)),
            profiled(lambda: ours.model.forward_image(image)),
        )
    if not args.skip_video:
        source = cases.bedroom_frames(SHARED, args.frames)
        report(
            f"propagate_in_video, 2 objects, {args.frames} frames (init_state and prompts in):",
            profiled(lambda: propagate(meta, source, args.frames)),
            profiled(lambda: propagate(ours, source, args.frames)),
        )


if __name__ == "__main__":
    main()

"""SAM 2 image encoder speed: masktron vs Meta's `sam2` package, same weights, input and threads.

Meta's package is a baseline only (the `parity` extra), never a masktron dependency:

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'
    python benchmarks/sam2_benchmark.py [--variant sam2.1_hiera_t] [--threads 2] [--repeats 5]

Both models load the parity-fixture checkpoint of the variant (`tests/sam2_fixtures_util.py`:
the shared weight rule over Meta's tensor names, written as Meta's `{"model": state_dict}`), or
`--checkpoint` (a real Meta `.pt`). Timed, the two implementations alternating in this process so
that machine load hits both alike: `forward_image` on a 1024x1024 image (trunk, neck, and the
decoder's high-resolution projections), the work of `set_image` and of every video frame. The
outputs are compared too, so a speed-up never hides a different result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sam2_fixtures_util import meta_config_name, sam2_fixture_checkpoint  # noqa: E402

from masktron.models.sam2 import build_sam2  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="sam2.1_hiera_t")
    parser.add_argument("--checkpoint", help="a Meta .pt file (default: fixture weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from sam2.build_sam import build_sam2 as meta_build_sam2
    except ImportError:
        sys.exit("Meta's sam2 is not installed (see this script's docstring)")

    ckpt = args.checkpoint or str(sam2_fixture_checkpoint(args.variant))
    meta = meta_build_sam2(meta_config_name(args.variant), ckpt, device="cpu")
    ours = build_sam2(ckpt_path=ckpt)
    torch.manual_seed(0)
    image = torch.randn(1, 3, 1024, 1024)

    times: dict[str, list[float]] = {"meta": [], "ours": []}
    cpu: dict[str, list[float]] = {"meta": [], "ours": []}
    outs = {}
    with torch.inference_mode():
        for model in (meta, ours):  # warm-up: caches, allocator, lazy initialisation
            model.forward_image(image)
        for _ in range(args.repeats):
            for name, model in (("meta", meta), ("ours", ours)):
                start, start_cpu = time.perf_counter(), time.process_time()
                outs[name] = model.forward_image(image)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(outs["meta"]["backbone_fpn"], outs["ours"]["backbone_fpn"])
    )
    meta_s, our_s = statistics.median(times["meta"]), statistics.median(times["ours"])
    meta_c, our_c = statistics.median(cpu["meta"]), statistics.median(cpu["ours"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"SAM 2 image encoder ({args.variant}, 1024x1024, {args.threads} threads, load {load:.1f})"
    )
    print(f"{'':<16} {'Meta':>9} {'masktron':>9} {'ratio':>7}")
    print(
        f"{'forward_image':<16} {meta_s:>8.3f}s {our_s:>8.3f}s {meta_s / our_s:>6.2f}x   "
        f"max |d feature| {diff:.2e}"
    )
    # CPU seconds of this process: less sensitive than wall time to other processes' load
    print(f"{'  (CPU time)':<16} {meta_c:>8.3f}s {our_c:>8.3f}s {meta_c / our_c:>6.2f}x")


if __name__ == "__main__":
    main()

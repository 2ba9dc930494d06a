"""SAM 2 image encoder speed: masktron vs Meta's `sam2` package, same weights, input and threads.

Meta's package is a baseline only (the `parity` extra), never a masktron dependency:

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'
    python benchmarks/sam2_benchmark.py [--variant sam2.1_hiera_t] [--threads 2] [--repeats 5]

Both models load the parity-fixture checkpoint of the variant (`tests/sam2_fixtures_util.py`:
the shared weight rule over Meta's tensor names, written as Meta's `{"model": state_dict}`), or
`--checkpoint` (a real Meta `.pt`). Timed, the two implementations alternating in this process so
that machine load hits both alike: `forward_image` on a 1024x1024 image (trunk, neck, and the
decoder's high-resolution projections), the work of `set_image` and of every video frame, for
Meta's model in float32 and under `torch.autocast("cpu", torch.bfloat16)` (how Meta's examples
run it in reduced precision) and masktron's in float32 and in bf16 (`set_sam2_precision`). The
outputs are compared too, so a speed-up never hides a different result: the features' largest
difference to Meta's (fp32), and the masks of a few prompts on a photo, bf16 against fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sam2_fixtures_util import SHARED, meta_config_name, sam2_fixture_checkpoint  # noqa: E402

from masktron.models.sam2 import build_sam2  # noqa: E402
from masktron.models.sam2.precision import set_sam2_precision  # noqa: E402
from masktron.predictors.sam2_image import SAM2ImagePredictor  # noqa: E402

SIDES = ("meta", "meta_bf16", "ours", "ours_bf16")


def bf16_mask_ious(ours: torch.nn.Module, ours_bf16: torch.nn.Module) -> list[float]:
    """Mask IoU of bf16 with fp32 on a photo (a centre click, a box, click + box)."""
    import numpy as np
    from PIL import Image

    path = SHARED / "data" / "images" / "astronaut.png"
    if not path.is_file():
        return []
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    prompts = [
        {"point_coords": np.array([[w / 2, h / 2]]), "point_labels": np.array([1])},
        {"box": np.array([0.2 * w, 0.25 * h, 0.8 * w, 0.9 * h])},
        {
            "point_coords": np.array([[0.5 * w, 0.4 * h]]),
            "point_labels": np.array([1]),
            "box": np.array([0.2 * w, 0.25 * h, 0.8 * w, 0.9 * h]),
        },
    ]
    masks = []
    for model in (ours, ours_bf16):
        predictor = SAM2ImagePredictor(model)
        predictor.set_image(image)
        masks.append([predictor.predict(**p, multimask_output=False)[0][0] > 0 for p in prompts])
    return [float((a & b).sum() / max((a | b).sum(), 1)) for a, b in zip(*masks)]


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
    ours_bf16 = set_sam2_precision(build_sam2(ckpt_path=ckpt), "bf16")
    models = {"meta": meta, "meta_bf16": meta, "ours": ours, "ours_bf16": ours_bf16}

    def precision(name: str) -> contextlib.AbstractContextManager:
        if name == "meta_bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.manual_seed(0)
    image = torch.randn(1, 3, 1024, 1024)

    times: dict[str, list[float]] = {name: [] for name in SIDES}
    cpu: dict[str, list[float]] = {name: [] for name in SIDES}
    outs = {}
    with torch.inference_mode():
        for name in SIDES:  # warm-up: caches, allocator, lazy initialisation
            with precision(name):
                models[name].forward_image(image)
        for _ in range(args.repeats):
            for name in SIDES:  # alternating: a change of machine load hits every side
                start, start_cpu = time.perf_counter(), time.process_time()
                with precision(name):
                    outs[name] = models[name].forward_image(image)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    def diff(name: str) -> float:
        pairs = zip(outs["meta"]["backbone_fpn"], outs[name]["backbone_fpn"])
        return max((a.float() - b.float()).abs().max().item() for a, b in pairs)

    wall = {name: statistics.median(t) for name, t in times.items()}
    cpu_s = {name: statistics.median(t) for name, t in cpu.items()}
    ious = bf16_mask_ious(ours, ours_bf16)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"SAM 2 image encoder ({args.variant}, 1024x1024, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load {load:.1f}), forward_image, median of {args.repeats}"
    )
    print(f"{'':<22} {'wall':>9} {'ratio':>7} {'CPU time':>9} {'ratio':>7}  max |d feature|")
    for name, label in (
        ("meta", "Meta fp32"),
        ("meta_bf16", "Meta bf16 autocast"),
        ("ours", "masktron fp32"),
        ("ours_bf16", "masktron bf16"),
    ):
        print(
            f"{label:<22} {wall[name]:>8.3f}s {wall['meta'] / wall[name]:>6.2f}x "
            f"{cpu_s[name]:>8.3f}s {cpu_s['meta'] / cpu_s[name]:>6.2f}x  "
            + ("" if name == "meta" else f"{diff(name):.2e}")
        )
    if ious:
        listed = ", ".join(f"{i:.4f}" for i in ious)
        print(f"bf16 vs fp32 mask IoU (click, box, click + box): {listed}")
    print("ratio = Meta fp32 / side (goal >= 1.5x)")
    print(
        f"at each one's bf16: masktron bf16 {wall['meta_bf16'] / wall['ours_bf16']:.2f}x "
        f"Meta's autocast (wall), {cpu_s['meta_bf16'] / cpu_s['ours_bf16']:.2f}x (CPU time)"
    )


if __name__ == "__main__":
    main()

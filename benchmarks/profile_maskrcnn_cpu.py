"""Where one image's time goes in masktron's Mask R-CNN R50-FPN on the CPU, stage by stage.

Wall-clock time of each stage (forward hooks and wrapped methods around the predictor's own
calls, so nothing is re-run), for `MODEL.PRECISION` fp32 and bf16, on the photos of
benchmarks/bench_maskrcnn_cpu.py (its weights: the parity fixture when ../shared is present).
The two precisions alternate image by image, so a change of the machine's load affects both.
For float32 it also counts each stage's floating-point work (one extra pass per image under
`torch.utils.flop_counter`, oneDNN off so that every convolution is an aten call it sees), its
rate, and a bound: the time if every counted product ran at the rate of the model's largest
convolution alone (a 256-channel 3x3 at 200x304) and everything else took its present time.
docs/speed.md holds tables made with it.

    python benchmarks/profile_maskrcnn_cpu.py [--threads 2] [--repeats 2] [IMAGES...]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bench_maskrcnn_cpu import DEFAULT_IMAGES, SHARED, fixture_pickle, masktron_predictor
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from masktron.engine import DefaultPredictor

# (stage, object path from the predictor, attribute): modules get hooks, methods a wrapper.
STAGES = [
    ("resize + to tensor", "", "_to_input"),
    ("normalise + pad", "model", "preprocess_image"),
    ("ResNet-50", "model.backbone", "bottom_up"),
    ("FPN (backbone minus ResNet)", "model", "backbone"),
    ("RPN head convs", "model.proposal_generator", "rpn_head"),
    ("RPN (anchors, decode, top-k, NMS)", "model", "proposal_generator"),
    ("box RoIAlign", "model.roi_heads", "box_pooler"),
    ("box head (2 FC)", "model.roi_heads", "box_head"),
    ("box predictor + NMS", "model.roi_heads.box_predictor", "inference"),
    ("mask RoIAlign", "model.roi_heads", "mask_pooler"),
    ("mask head (4 conv + deconv + predictor)", "model.roi_heads", "mask_head"),
    ("paste masks + rescale", "model", "_postprocess"),
]
# Stages whose time includes others': reported net of them.
NESTED = {
    "FPN (backbone minus ResNet)": ["ResNet-50"],
    "RPN (anchors, decode, top-k, NMS)": ["RPN head convs"],
}


def _resolve(root: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        root = getattr(root, part)
    return root


def instrument(predictor: DefaultPredictor, spent: dict[str, float]) -> None:
    """Add each stage's wall time to `spent[stage]` whenever the predictor runs it."""
    for stage, path, attr in STAGES:
        owner = _resolve(predictor, path)
        target = getattr(owner, attr)
        if isinstance(target, torch.nn.Module):
            starts: list[float] = []
            target.register_forward_pre_hook(lambda *_a, s=starts: s.append(time.perf_counter()))
            target.register_forward_hook(
                lambda *_a, s=starts, n=stage: spent.__setitem__(
                    n, spent[n] + time.perf_counter() - s.pop()
                )
            )
        else:
            setattr(owner, attr, _timed(target, stage, spent))


def _timed(fn: Callable, stage: str, spent: dict[str, float]) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - start

    return wrapper


def stage_flops(predictor: DefaultPredictor, bgrs: list[np.ndarray]) -> dict[str, float]:
    """Mean floating-point operations per image of each module stage (methods get none)."""
    counts: dict[str, float] = defaultdict(float)
    root = type(predictor.model).__name__
    for bgr in bgrs:
        with warnings.catch_warnings():  # flags() notes a deprecated TF32 switch it restores
            warnings.simplefilter("ignore")
            with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as fc:
                predictor(bgr)
        per_module = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
        for stage, path, attr in STAGES:
            if path.startswith("model") and isinstance(
                getattr(_resolve(predictor, path), attr), torch.nn.Module
            ):
                key = ".".join([root, *filter(None, path.split(".")[1:]), attr])
                counts[stage] += per_module.get(key, 0) / len(bgrs)
        counts["total"] += per_module.get("Global", 0) / len(bgrs)
    for outer, inner in NESTED.items():
        counts[outer] -= sum(counts[i] for i in inner)
    counts["other (Python, glue)"] = counts["total"] - sum(counts[s] for s, _, _ in STAGES)
    return counts


def peak_rate(repeats: int = 5) -> float:
    """FLOP/s of the model's largest convolution alone (256 -> 256 channels, 3x3, 200x304),
    best of `repeats` calls."""
    x = torch.randn(1, 256, 200, 304).to(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).to(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        for _ in range(repeats):
            start = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - start)
    return 2 * 200 * 304 * 256 * 256 * 9 / best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="*")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = args.images or [str(SHARED / "data" / "images" / n) for n in DEFAULT_IMAGES]
    bgrs = [np.asarray(Image.open(p).convert("RGB"))[:, :, ::-1] for p in paths]
    weights = fixture_pickle()
    precisions = ["fp32", "bf16"]
    predictors = {p: masktron_predictor(weights, p) for p in precisions}
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in precisions}
    for predictor in predictors.values():
        predictor(bgrs[0])  # warm-up, before the hooks
    spent_now = {p: defaultdict(float) for p in precisions}
    for name, predictor in predictors.items():
        instrument(predictor, spent_now[name])
    for _ in range(args.repeats):
        for bgr in bgrs:
            for name, predictor in predictors.items():
                spent = spent_now[name]
                spent.clear()
                start = time.perf_counter()
                predictor(bgr)
                total = time.perf_counter() - start
                row = dict(spent)
                for outer, inner in NESTED.items():
                    row[outer] = row.get(outer, 0.0) - sum(row.get(i, 0.0) for i in inner)
                row["total"] = total
                row["other (Python, glue)"] = total - sum(row.get(s, 0.0) for s, _, _ in STAGES)
                runs[name].append(row)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {len(bgrs)} images x "
        f"{args.repeats}; median ms per image"
    )
    flops = stage_flops(predictors["fp32"], bgrs)
    peak = peak_rate()
    names = [s for s, _, _ in STAGES] + ["other (Python, glue)", "total"]
    ms = {
        p: {n: statistics.median(r.get(n, 0.0) for r in runs[p]) * 1000 for n in names}
        for p in precisions
    }
    fp32 = ms["fp32"]
    # the fp32 bound: a stage's products at the peak rate (never slower than now), other work
    # (stages without products, and the glue) as it is
    bound = {s: min(fp32[s], flops[s] / peak * 1000) if flops[s] else fp32[s] for s in names[:-2]}
    bound["other (Python, glue)"] = fp32["other (Python, glue)"]
    bound["total"] = sum(bound.values())
    print(f"| stage | {' | '.join(precisions)} | fp32 GFLOP | fp32 GFLOP/s | fp32 bound ms |")
    print("|---|" + "---:|" * (len(precisions) + 3))
    for stage in names:
        cells = [f"{ms[p][stage]:.0f} ({ms[p][stage] / ms[p]['total']:.0%})" for p in precisions]
        gflop = flops[stage] / 1e9
        counted = gflop >= 0.05
        rate = f"{gflop / fp32[stage] * 1000:.0f}" if counted and fp32[stage] > 0 else "-"
        cells += [f"{gflop:.1f}" if counted else "-", rate, f"{bound[stage]:.0f}"]
        print(f"| {stage} | {' | '.join(cells)} |")
    print(
        f"peak: one 256-channel 3x3 convolution at 200x304 alone runs at {peak / 1e9:.0f} GFLOP/s;"
        f" fp32 bound = {bound['total']:.0f} ms per image if every stage's products ran at"
        " that rate"
    )


if __name__ == "__main__":
    main()

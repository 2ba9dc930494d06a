"""Where one image's time goes in masktron's Mask R-CNN R50-FPN on the CPU, stage by stage.

Wall-clock time of each stage (forward hooks and wrapped methods around the predictor's own
calls, so nothing is re-run), for `MODEL.PRECISION` fp32 and bf16, on the photos of
benchmarks/bench_maskrcnn_cpu.py (its weights: the parity fixture when ../shared is present).
The two precisions alternate image by image, so a change of the machine's load affects both.
docs/speed.md holds a table made with it.

    python benchmarks/profile_maskrcnn_cpu.py [--threads 2] [--repeats 2] [IMAGES...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from bench_maskrcnn_cpu import DEFAULT_IMAGES, SHARED, fixture_pickle, masktron_predictor
from PIL import Image

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
    names = [s for s, _, _ in STAGES] + ["other (Python, glue)", "total"]
    print(f"| stage | {' | '.join(precisions)} |")
    print("|---|" + "---:|" * len(precisions))
    for stage in names:
        cells = []
        for p in precisions:
            ms = statistics.median(r.get(stage, 0.0) for r in runs[p]) * 1000
            share = ms / (statistics.median(r["total"] for r in runs[p]) * 1000)
            cells.append(f"{ms:.0f} ({share:.0%})")
        print(f"| {stage} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

"""SAM speed: masktron vs Meta's `segment-anything` package, same weights, image and threads.

Meta's package is a benchmark baseline only, never a masktron dependency: it is in the `parity`
extra (`pip install -c constraints.txt segment-anything`), or install it apart and name its folder:

    pip install --target /tmp/sam_ref segment-anything
    python benchmarks/sam_benchmark.py [--ref /tmp/sam_ref] [--threads 2] [--checkpoint PATH]
        [--bf16] [--only set_image,generator]

Without --checkpoint both load ViT-B parity-fixture weights (../shared/fixtures), written in
Meta's `.pth` format. Timed, with the two implementations alternating in this process:
`set_image`; one point prompt; 64 box prompts in one `predict_torch` call; and the automatic
mask generator at 32 points per side with Meta's default thresholds, then with a stability
threshold of 0.5 (random weights give no 0.95-stable mask, and a comparison wants masks); the
generator runs once each, it is slow on a CPU. The outputs are compared too, so a speed-up never
hides a different result. `--bf16` adds rows for masktron with `set_sam_precision(model, "bf16")`
against Meta's float32 (its outputs compared with masktron's float32 ones).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from masktron.models.sam import sam_model_registry
from masktron.models.sam.precision import set_sam_precision
from masktron.predictors.auto_mask import SamAutomaticMaskGenerator
from masktron.predictors.sam_predictor import SamPredictor
from masktron.utils.file_io import atomic_open

SHARED = Path(os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def fixture_checkpoint() -> str:
    """The ViT-B parity-fixture weights as a Meta-format `.pth` under the temporary folder."""
    sys.path.insert(0, str(SHARED / "fixtures"))
    from fixture_weights import fixture_weights

    data = np.load(SHARED / "fixtures" / "sam_vit_b.shapes.npz")
    shapes = {k: tuple(int(s) for s in data[k]) for k in data.files}
    # one fixed file, rewritten each run: a killed run leaves no new copy behind
    path = Path(tempfile.gettempdir()) / "masktron_benchmarks" / "sam_vit_b_fixture.pth"
    weights = fixture_weights(shapes, 0)
    with atomic_open(path) as f:
        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, f)
    return str(path)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def alternate(
    ref_fn: Callable[[], Any], our_fn: Callable[[], Any], repeats: int
) -> tuple[float, float, Any, Any]:
    """Median seconds of each, calls alternating so machine load hits both alike."""
    ref_times, our_times = [], []
    ref_out = our_out = None
    for _ in range(repeats):
        t, ref_out = timed(ref_fn)
        ref_times.append(t)
        t, our_out = timed(our_fn)
        our_times.append(t)
    return statistics.median(ref_times), statistics.median(our_times), ref_out, our_out


def report(name: str, ref_s: float, our_s: float, check: str) -> None:
    ratio = ref_s / our_s
    print(f"{name:<28} {ref_s:>9.3f} s {our_s:>9.3f} s {ratio:>7.2f}x   {check}", flush=True)


def mask_set_agreement(ref: list[dict], ours: list[dict]) -> str:
    """How many masks pair one to one at IoU >= 0.98 (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    if not ref or not ours:
        return f"{len(ref)} vs {len(ours)} masks"
    a = np.stack([r["segmentation"] for r in ref]).reshape(len(ref), -1).astype(np.float32)
    b = np.stack([r["segmentation"] for r in ours]).reshape(len(ours), -1).astype(np.float32)
    inter = a @ b.T
    iou = inter / np.maximum(a.sum(1)[:, None] + b.sum(1)[None] - inter, 1)
    rows, cols = linear_sum_assignment(-iou)
    matched = int((iou[rows, cols] >= 0.98).sum())
    return f"{len(ref)} vs {len(ours)} masks, {matched} matched at IoU >= 0.98"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="/tmp/sam_ref", help="folder holding segment_anything")
    parser.add_argument("--checkpoint", help="a Meta SAM .pth (default: ViT-B fixture weights)")
    parser.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--image", default=str(SHARED / "data" / "images" / "astronaut.png"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--skip-amg", action="store_true", help="leave out the generator")
    parser.add_argument("--bf16", action="store_true", help="also time masktron in bf16")
    parser.add_argument(
        "--only",
        default="set_image,predict,boxes,generator",
        help="comma-separated subset of: set_image, predict, boxes, generator",
    )
    args = parser.parse_args()

    sys.path.insert(0, args.ref)
    try:
        import segment_anything as meta
    except ImportError:
        print(f"segment_anything not found in {args.ref}; see this script's docstring")
        return 1
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or fixture_checkpoint()
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ref_model = meta.sam_model_registry[args.model]()
    ref_model.load_state_dict(state_dict)
    ref_model.eval()
    our_model = sam_model_registry[args.model](checkpoint=checkpoint)
    bf16_model = None
    if args.bf16:
        bf16_model = set_sam_precision(
            sam_model_registry[args.model](checkpoint=checkpoint), "bf16"
        )
    only = set(args.only.split(","))
    image = np.asarray(Image.open(args.image).convert("RGB"))
    h, w = image.shape[:2]
    print(f"{args.model}, {os.path.basename(args.image)} {w}x{h}, {args.threads} threads")
    print(f"{'':<28} {'Meta':>11} {'masktron':>11} {'ratio':>8}")

    ref_pred, our_pred = meta.SamPredictor(ref_model), SamPredictor(our_model)
    bf16_pred = SamPredictor(bf16_model) if bf16_model is not None else None
    with torch.inference_mode():
        ref_s, our_s, _, _ = alternate(
            lambda: ref_pred.set_image(image), lambda: our_pred.set_image(image), args.repeats
        )
        diff = (ref_pred.features - our_pred.features).abs().max().item()
        report("set_image", ref_s, our_s, f"max |embedding diff| {diff:.1e}")
        if bf16_pred is not None:
            ref_s, our_s, _, _ = alternate(
                lambda: ref_pred.set_image(image), lambda: bf16_pred.set_image(image), args.repeats
            )
            ours = our_pred.get_image_embedding()
            rel = ((bf16_pred.get_image_embedding() - ours).norm() / ours.norm()).item()
            report(
                "set_image, masktron bf16", ref_s, our_s, f"embedding vs fp32: rel. L2 {rel:.1e}"
            )

        if "predict" in only:
            point = {"point_coords": np.array([[0.5 * w, 0.5 * h]]), "point_labels": np.array([1])}
            ref_s, our_s, ref_out, our_out = alternate(
                lambda: ref_pred.predict(**point),
                lambda: our_pred.predict(**point),
                args.repeats * 3,
            )
            diff = np.abs(ref_out[2] - our_out[2]).max()
            report("predict, 1 point", ref_s, our_s, f"max |low-res logit diff| {diff:.1e}")

        if "boxes" in only:
            rng = np.random.default_rng(0)
            xy = rng.uniform(0, [w, h], (64, 2, 2))
            boxes = np.concatenate([xy.min(1), xy.max(1)], axis=1)
            boxes_t = torch.as_tensor(
                our_pred.transform.apply_boxes(boxes, (h, w)), dtype=torch.float
            )
            ref_s, our_s, ref_out, our_out = alternate(
                lambda: ref_pred.predict_torch(None, None, boxes=boxes_t, multimask_output=True),
                lambda: our_pred.predict_torch(None, None, boxes=boxes_t, multimask_output=True),
                args.repeats,
            )
            diff = (ref_out[2] - our_out[2]).abs().max().item()
            report("predict_torch, 64 boxes", ref_s, our_s, f"max |low-res logit diff| {diff:.1e}")

        if "generator" in only and not args.skip_amg:
            pps = args.points_per_side
            # Meta's defaults; then a stability threshold that masks of random (fixture) weights
            # can pass, so that there are masks to compare.
            for label, extra in (("", {}), (", stab 0.5", {"stability_score_thresh": 0.5})):
                ref_gen = meta.SamAutomaticMaskGenerator(ref_model, points_per_side=pps, **extra)
                our_gen = SamAutomaticMaskGenerator(our_model, points_per_side=pps, **extra)
                ref_s, ref_masks = timed(lambda g=ref_gen: g.generate(image))
                our_s, our_masks = timed(lambda g=our_gen: g.generate(image))
                check = mask_set_agreement(ref_masks, our_masks)
                report(f"generator, {pps}/side{label}", ref_s, our_s, check)
                if bf16_model is not None:
                    gen = SamAutomaticMaskGenerator(bf16_model, points_per_side=pps, **extra)
                    bf16_s, bf16_masks = timed(lambda g=gen: g.generate(image))
                    check = mask_set_agreement(our_masks, bf16_masks) + " (vs masktron fp32)"
                    report("  same, masktron bf16", ref_s, bf16_s, check)
    return 0


if __name__ == "__main__":
    sys.exit(main())

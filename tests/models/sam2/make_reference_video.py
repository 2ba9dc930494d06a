"""Regenerate the stored SAM 2 video references with Meta's `sam2` (the oracle).

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e ".[parity]"
    python tests/models/sam2/make_reference_video.py [--variant sam2.1_hiera_t] [--size 512]
    python tests/models/sam2/make_reference_video.py --profile tracking

For each variant and input size (`image_size`, Meta's `model.image_size`), Meta's
`SAM2VideoPredictor` loads the fixture checkpoint (`tests/sam2_fixtures_util.py`) and runs the
cases of `sam2_video_cases.py` on the bedroom frames; masks are stored as packed bits and
low-resolution logits as a float16 subset in `data/video_ref_<variant>[_<size>].npz`
(compressed). `--profile tracking` makes the `tracking` case instead (tiny at 256 on the
rescaled fixture checkpoint, the first 8 of the 16 frames,
`data/video_ref_sam2.1_hiera_t_256_tracking.npz`, which also keeps the profile's factors).
Prints each object's mask area and the objects' IoU per frame (the fixture weights must give
two distinct, changing masks for the comparison to mean something).

Meta fills holes of up to 8 low-resolution pixels with a CUDA extension and skips the step
(with a warning) where it is missing, as on this CPU build. The oracle should show what Meta's
users get, so this script gives Meta's `fill_holes_in_mask_scores` a connected-components
function computed by scipy (`scipy.ndimage.label`, 8-connectivity): the reference is Meta's
post-processing with an independent implementation of the one missing kernel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # sam2_video_cases; tests/ (fixture helpers)

import sam2_video_cases as cases  # noqa: E402
from sam2_fixtures_util import SCALE_PROFILES, SHARED, build_meta_sam2  # noqa: E402


def scipy_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Meta's `get_connected_components` contract: (N, 1, H, W) -> labels and areas."""
    from scipy import ndimage

    labels = np.zeros(mask.shape, dtype=np.int64)
    counts = np.zeros(mask.shape, dtype=np.int64)
    for i, m in enumerate(mask[:, 0].cpu().numpy().astype(bool)):
        lab, _ = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
        areas = np.bincount(lab.ravel())
        areas[0] = 0
        labels[i, 0], counts[i, 0] = lab, areas[lab]
    return torch.from_numpy(labels), torch.from_numpy(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", choices=cases.VARIANTS)
    parser.add_argument("--size", action="append", type=int, choices=cases.SIZES)
    parser.add_argument("--profile", choices=sorted(SCALE_PROFILES), help="the `tracking` case")
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    import sam2.utils.misc

    sam2.utils.misc.get_connected_components = scipy_connected_components
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.profile is not None:
        make_tracking(args.out)
        return
    for size in args.size or cases.SIZES:
        for variant in args.variant or cases.VARIANTS:
            start = time.time()
            torch.manual_seed(0)
            predictor = build_meta_sam2(variant, video=True, image_size=size)
            folder = cases.bedroom_frames(SHARED, cases.REFERENCE_FRAMES)
            with torch.inference_mode():
                order, masks, logits = cases.track_forward(
                    predictor, folder, cases.REFERENCE_FRAMES
                )
            arrays = {"forward_order": np.asarray(order), "forward_masks": cases.pack(masks)}
            arrays["forward_logits"] = logits
            arrays["width"] = np.asarray(masks.shape[-1])
            print(f"{variant} @ {size} forward: {cases.summary(masks)}", flush=True)
            if variant == "sam2.1_hiera_t" and size == 1024:
                folder = cases.bedroom_frames(SHARED, cases.REVERSE_FRAMES)
                with torch.inference_mode():
                    order, masks, logits = cases.run_mask_reverse(predictor, folder)
                arrays["mask_reverse_order"] = np.asarray(order)
                arrays["mask_reverse_masks"] = cases.pack(masks)
                arrays["mask_reverse_logits"] = logits
                print(f"{variant} @ {size} mask_reverse: {cases.summary(masks)}", flush=True)
            path = cases.reference_path(args.out, variant, size)
            np.savez_compressed(path, **arrays)
            size_kb = path.stat().st_size // 1024
            print(f"{variant} @ {size}: {path} ({size_kb} KiB, {time.time() - start:.0f} s)")


def make_tracking(out: Path) -> None:
    """The `tracking` case: `forward` on the rescaled checkpoint, masks and logits stored."""
    profile, variant, size = cases.TRACKING
    start = time.time()
    torch.manual_seed(0)
    predictor = build_meta_sam2(variant, video=True, image_size=size, profile=profile)
    folder = cases.bedroom_frames(SHARED, cases.REFERENCE_FRAMES)
    with torch.inference_mode():
        order, masks, logits = cases.track_forward(predictor, folder, cases.TRACKING_FRAMES)
    scales = json.dumps(SCALE_PROFILES[profile], sort_keys=True)
    path = cases.reference_path(out, variant, size, profile)
    np.savez_compressed(
        path,
        forward_order=np.asarray(order),
        forward_masks=cases.pack(masks),
        forward_logits=logits,
        width=np.asarray(masks.shape[-1]),
        scales=np.asarray(scales),
    )
    print(f"{variant} @ {size} {profile}: {cases.summary(masks)}", flush=True)
    print(f"{path} ({path.stat().st_size // 1024} KiB, {time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()

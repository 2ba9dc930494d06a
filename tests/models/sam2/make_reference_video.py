"""Regenerate the stored SAM 2 video references with Meta's `sam2` (the oracle).

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e ".[parity]"
    python tests/models/sam2/make_reference_video.py [--variant sam2.1_hiera_t ...]

For each variant, Meta's `SAM2VideoPredictor` loads the fixture checkpoint
(`tests/sam2_fixtures_util.py`) and runs the cases of `sam2_video_cases.py` on the bedroom
frames; the masks are stored as packed bits in `data/video_ref_<variant>.npz` (compressed).

Meta fills holes of up to 8 low-resolution pixels with a CUDA extension and skips the step
(with a warning) where it is missing, as on this CPU build. The oracle should show what Meta's
users get, so this script gives Meta's `fill_holes_in_mask_scores` a connected-components
function computed by scipy (`scipy.ndimage.label`, 8-connectivity): the reference is Meta's
post-processing with an independent implementation of the one missing kernel.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # sam2_video_cases; tests/ (fixture helpers)

import sam2_video_cases as cases  # noqa: E402
from sam2_fixtures_util import SHARED, build_meta_sam2  # noqa: E402


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
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    import sam2.utils.misc

    sam2.utils.misc.get_connected_components = scipy_connected_components
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    for variant in args.variant or cases.VARIANTS:
        start = time.time()
        predictor = build_meta_sam2(variant, video=True)
        count = cases.REFERENCE_FRAMES[variant]
        folder = cases.bedroom_frames(SHARED, count)
        order, masks = cases.run_forward(predictor, folder, count)
        arrays = {"forward_order": np.asarray(order), "forward_masks": cases.pack(masks)}
        arrays["width"] = np.asarray(masks.shape[-1])
        if variant == "sam2.1_hiera_t":
            folder = cases.bedroom_frames(SHARED, cases.REVERSE_FRAMES)
            order, masks = cases.run_mask_reverse(predictor, folder)
            arrays["mask_reverse_order"] = np.asarray(order)
            arrays["mask_reverse_masks"] = cases.pack(masks)
        path = cases.reference_path(args.out, variant)
        np.savez_compressed(path, **arrays)
        areas = masks.reshape(len(masks), 2, -1).sum(-1).tolist()
        print(f"{variant}: {path} ({path.stat().st_size} bytes, {time.time() - start:.0f} s)")
        print(f"  last case's mask areas per frame: {areas}")


if __name__ == "__main__":
    main()

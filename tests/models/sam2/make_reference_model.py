"""Regenerate the SAM 2 model references (`data/model_ref_*.npz`) with Meta's `sam2` 1.1.0.

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e '.[parity]'   # Meta's sam2, CPU
    PYTHONPATH=. python tests/models/sam2/make_reference_model.py [VARIANT ...]

For each reference variant, Meta's video model (the SAM2Base its `build_sam2_video_predictor`
builds) is loaded from the fixture checkpoint (`tests/sam2_fixtures_util.py`) and run on the cases
of `sam2_model_cases.py`: image features and SAM-head outputs, then `track_step` over a short
synthetic sequence. Not collected by pytest (no `test_` prefix).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from sam2_fixtures_util import build_meta_sam2  # noqa: E402
from sam2_model_cases import (  # noqa: E402
    REFERENCE_VARIANTS,
    TRACK_MASK_PROMPTS,
    TRACK_SHIFTS,
    image_outputs,
    input_image,
    reference_path,
    track_outputs,
)


def main() -> None:
    torch.manual_seed(0)
    for variant in sys.argv[1:] or REFERENCE_VARIANTS:
        model = build_meta_sam2(variant, video=True)
        with torch.no_grad():
            out = image_outputs(model, model.forward_image(input_image()))
        out.update(
            track_outputs(model, TRACK_SHIFTS[variant], mask_prompts=TRACK_MASK_PROMPTS[variant])
        )
        path = reference_path(variant)
        np.savez_compressed(path, **out)
        print(f"{path}: {len(out)} arrays, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

"""Reduced-precision SAM 2 inference: the Hiera trunk, the neck and the memory path in bf16/fp16.

`set_sam2_precision(model, "bf16")` converts a built, loaded SAM 2 once, as
`masktron.models.sam.precision.set_sam_precision` does for SAM: weights are cast a single time
(never per call), and each converted block casts its floating inputs down and its floating
outputs back to float32. In the low dtype run:

- the image encoder's Hiera trunk and FPN neck (`forward_image`, i.e. `set_image` and every
  video frame); the maps it returns are float32, and their sine position codes are computed in
  float32 from them (not rounded);
- the memory attention (4 RoPE layers: the current frame's self-attention and its
  cross-attention to up to 7 frame memories and the object pointers, the bulk of the work of
  each tracked object on each frame); the rotary angles are applied in float32 and rounded once;
- the memory encoder (mask downsampler, fuser, projections), whose output the video state keeps
  in bfloat16 anyway (as Meta's predictor does).

float32 stays for the pixel normalisation, the prompt encoder, the whole mask decoder (its
two-way transformer decides the predicted IoUs and object scores that multimask selection,
the automatic generator's thresholds and the "object absent" decision read, and it is a small
share of the time), its high-resolution projections, the object-pointer projection, mask
upsampling, hole filling and thresholds. `"fp32"` leaves the model untouched, its outputs
bit-identical.

The agreement with float32 / Meta's outputs is checked by tests/models/sam2/test_sam2_precision.py
and reported by the benchmarks (`benchmarks/sam2_benchmark.py`, `sam2_video_benchmark.py`).
"""

from __future__ import annotations

import torch

from masktron.models.sam.precision import _low_precision, conversion_dtype
from masktron.models.sam2.sam2_base import SAM2Base

__all__ = ["set_sam2_precision"]


def set_sam2_precision(model: SAM2Base, precision: str) -> SAM2Base:
    """Convert a built, loaded, eval-mode SAM 2 to `precision` ("fp32", "bf16", "fp16"), in place.

    Call it once, after loading weights (weights loaded later would be rounded by the load);
    "fp32" returns `model` unchanged. "fp16" needs a CUDA device; "bf16" pays on CPUs with
    native bf16 units (AVX-512 BF16 / AMX) and on recent GPUs. The same model serves
    `SAM2ImagePredictor`, `SAM2AutomaticMaskGenerator` and `SAM2VideoPredictor`.

    Returns:
        `model`.

    Raises:
        TypeError: `model` is not a SAM 2 model (e.g. a predictor).
        ValueError: an unknown precision, "fp16" on a CPU, a model in training mode, or one
            already converted.
    """
    if not isinstance(model, SAM2Base):  # e.g. a predictor: its model is converted
        raise TypeError(
            f"set_sam2_precision takes a SAM 2 model, got {type(model).__name__} "
            "(for a predictor: set_sam2_precision(predictor.model, ...))"
        )
    dtype = conversion_dtype(model, precision, name="SAM 2")
    if dtype == torch.float32:
        return model
    encoder = model.image_encoder
    # Trunk and neck apart, so that the neck's float32 outputs give exact position codes.
    _low_precision(encoder.trunk, dtype, channels_last=True)
    _low_precision(encoder.neck, dtype, channels_last=True)
    _low_precision(model.memory_attention, dtype, channels_last=False)
    _low_precision(model.memory_encoder, dtype, channels_last=True)
    model.inference_precision = precision
    return model

"""Reduced-precision SAM inference: the ViT encoder and the decoder's heavy layers in bf16/fp16.

`set_sam_precision(model, "bf16")` converts a built, loaded SAM once, as
`masktron.models.precision.set_inference_precision` does for the detectors: weights are cast a
single time (never per call), and each converted block casts its inputs down and its outputs back
to float32. In the low dtype run:

- the image encoder (patch embedding, every transformer block with its position tables, the
  neck); the embedding it returns, and so `SamPredictor.get_image_embedding()`, is float32;
- the mask decoder's upscaling convolutions (the bulk of the automatic mask generator's work
  after the encoder: they run once per prompt with a surviving mask).

float32 stays for the pixel normalisation, the prompt encoder (point/box/mask embeddings), the
decoder's two-way transformer, the IoU head, the hypernetwork MLPs and their dot product with the
upscaled features (so mask logits are float32 sums), the upsampling of masks to the image,
thresholds, stability scores and NMS. The transformer stays float32 because it decides the
predicted IoUs that the generator thresholds: in bf16 they moved by up to 0.09 on the parity
fixture (masks' IoU with fp32 dropped to 0.95), against 0.0 and >= 0.99 with it in float32.
`"fp32"` leaves the model untouched, its outputs bit-identical.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from masktron.models.channels_last import set_channels_last
from masktron.models.precision import _cast_floats, precision_dtype
from masktron.models.sam.sam import Sam


def _low_precision(module: nn.Module, dtype: torch.dtype, *, channels_last: bool) -> None:
    """Cast every parameter and buffer of `module` to `dtype` once and fence its calls: floating
    inputs (positional and keyword) are cast down, floating outputs back to float32."""
    module.to(dtype)
    if channels_last:
        set_channels_last(module)

    def cast_inputs(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return _cast_floats(args, dtype, channels_last), _cast_floats(kwargs, dtype, channels_last)

    def cast_outputs(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        return _cast_floats(output, torch.float32)

    module.register_forward_pre_hook(cast_inputs, with_kwargs=True)
    module.register_forward_hook(cast_outputs)


def conversion_dtype(model: nn.Module, precision: str, *, name: str) -> torch.dtype:
    """The dtype `precision` names, once `model` (a SAM or SAM 2, called `name` in errors) is
    known to be convertible: float32 always; a low dtype only for an eval-mode model not
    converted yet (its `inference_precision` is "fp32").

    Raises:
        ValueError: an unknown precision, "fp16" on a CPU, training mode, already converted.
    """
    device = next(model.parameters()).device
    dtype = precision_dtype(precision, device, setting=f"{name} precision")
    if dtype == torch.float32:
        return dtype
    if model.training:
        raise ValueError(f"{name} precision other than fp32 is for inference: call model.eval()")
    converted = getattr(model, "inference_precision", "fp32")
    if converted != "fp32":
        raise ValueError(f"this {name} is already converted to {converted}")
    return dtype


def set_sam_precision(model: Sam, precision: str) -> Sam:
    """Convert a built, loaded, eval-mode SAM to `precision` ("fp32", "bf16", "fp16"), in place.

    Call it once, after loading weights (a checkpoint loaded later would be rounded by the
    load); "fp32" returns `model` unchanged. "fp16" needs a CUDA device; "bf16" pays on CPUs
    with native bf16 units (AVX-512 BF16 / AMX) and on recent GPUs. See docs/speed.md.

    Returns:
        `model`.
    """
    dtype = conversion_dtype(model, precision, name="SAM")
    if dtype == torch.float32:
        return model
    _low_precision(model.image_encoder, dtype, channels_last=True)
    _low_precision(model.mask_decoder.output_upscaling, dtype, channels_last=True)
    model.inference_precision = precision
    return model

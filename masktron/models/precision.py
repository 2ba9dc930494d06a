"""Reduced-precision inference (`MODEL.PRECISION`): the heavy layers in bf16/fp16, the rest fp32.

`set_inference_precision(model, "bf16")` converts a built, loaded detector once: the weights of
the convolution-heavy blocks are cast to the low dtype a single time (never per call), and each
block is fenced by hooks that cast its input down and its output back to float32. Everything
between the blocks stays float32, so the numerically sensitive steps see float32 tensors:

- pixel normalisation (done on the float32 image before the backbone),
- anchors, box decoding and clipping, proposal top-k, NMS inputs and scores,
- the last layer of each head (RPN objectness/deltas, box classifier/regressor, mask and
  semantic predictors, RetinaNet's classifier/regressor), so logits are float32 sums,
- RoIAlign on the backbone's features, mask pasting and panoptic merging.

Frozen BatchNorm statistics are folded into their convolution in float32 before the cast, so
the folded weights are rounded once. In bf16, a convolution followed by a residual sum and a
ReLU (the ResNet blocks) runs as one oneDNN call that rounds the sum once, not twice as the
separate bf16 operators do (`Conv2d.round_sum_once`; see `masktron.layers.fused_conv`).
Layers the blocks below do not name (e.g. keypoint heads) stay float32. `"fp32"` leaves the
model untouched: its outputs stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from masktron.layers.conv import Conv2d
from masktron.layers.frozen_bn import FrozenBatchNorm2d
from masktron.models.channels_last import set_channels_last

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Layers whose weights are cast; norms other than a folded FrozenBN keep float32 statistics
# except GroupNorm/LayerNorm, whose kernels accumulate in float32 for low-precision inputs.
_CAST_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.GroupNorm, nn.LayerNorm)


def precision_dtype(
    precision: str, device: torch.device | str, *, setting: str = "MODEL.PRECISION"
) -> torch.dtype:
    """The dtype for a `MODEL.PRECISION` value, checked against the device.

    `setting` names the option in error messages (e.g. "--precision" for the SAM CLI).

    Raises:
        ValueError: for an unknown name, or "fp16" on a CPU (its kernels there are slow and
            partial; use "bf16").
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{setting} must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise ValueError(f'{setting} "fp16" needs a CUDA device; use "bf16" on CPUs')
    return PRECISIONS[precision]


# Attribute of a float32 backbone output holding the low-precision map it was cast from: a
# low-precision block reading that output (the RPN head's convolution) takes the map itself
# instead of casting the float32 copy back down (lossless both ways, so the same bits).
_SOURCE = "_masktron_low_precision_source"


def _cast_floats(value: Any, dtype: torch.dtype, channels_last: bool = False) -> Any:
    """`value` with every floating tensor in it (nested in lists, tuples, dicts) cast, and
    its (N, C, H, W) tensors made channels-last when `channels_last` is set. A tensor that
    `_upcast_keeping_source` made is replaced by its source when that has `dtype`."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return value
        source = getattr(value, _SOURCE, None)
        if source is not None and source.dtype == dtype:
            value = source
        if channels_last and value.dim() == 4:
            return value.to(dtype, memory_format=torch.channels_last)
        return value.to(dtype)
    if isinstance(value, dict):
        return {k: _cast_floats(v, dtype, channels_last) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_floats(v, dtype, channels_last) for v in value)
    return value


def _upcast_keeping_source(value: Any) -> Any:
    """`value`'s floating tensors (nested in lists, tuples, dicts) cast to float32, each
    remembering the tensor it was cast from (for `_cast_floats`); outside tracing and
    compiling, which see plain casts."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return _cast_floats(value, torch.float32)
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or value.dtype == torch.float32:
            return value
        out = value.to(torch.float32)
        setattr(out, _SOURCE, value)
        return out
    if isinstance(value, dict):
        return {k: _upcast_keeping_source(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_upcast_keeping_source(v) for v in value)
    return value


def fold_frozen_batchnorm(module: nn.Module) -> None:
    """Fold every `Conv2d` + `FrozenBatchNorm2d` pair under `module` into the conv, in float32.

    Gives the same map as `Conv2d.forward`'s per-call folding, computed once; the norm is
    removed, so the state dict loses its `.norm.*` entries (an inference-only conversion).
    """
    for conv in module.modules():
        if isinstance(conv, Conv2d) and isinstance(conv.norm, FrozenBatchNorm2d):
            scale, shift = conv.norm.scale_and_shift()
            with torch.no_grad():
                weight = conv.weight * scale.reshape(-1, 1, 1, 1)  # (C,) -> (C, 1, 1, 1)
                bias = shift if conv.bias is None else conv.bias * scale + shift
                conv.weight = nn.Parameter(weight, requires_grad=False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
            conv.norm = None


def _low_precision_block(
    modules: list[nn.Module], dtype: torch.dtype, *, keep_source: bool = False
) -> None:
    """Run the chain `modules` (called in this order) in `dtype`: cast the weights once, cast
    the first one's inputs down and the last one's outputs back to float32 (with
    `keep_source`, each float32 output keeps the low-precision tensor it came from, for the
    blocks that read it: the backbone's maps for the RPN head).

    Image-like inputs and convolution weights are also made channels-last: oneDNN's bf16
    convolutions run about 3x faster in that layout than on (N, C, H, W)-contiguous tensors
    (measured on the R50-FPN backbone, 800x1216, 2 threads).
    """
    has_convs = False
    for module in modules:
        fold_frozen_batchnorm(module)
        for layer in module.modules():
            if isinstance(layer, _CAST_TYPES):
                layer.to(dtype)
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                layer.to(memory_format=torch.channels_last)
                has_convs = True
            if isinstance(layer, Conv2d):
                layer.round_sum_once = dtype == torch.bfloat16

    # A block without convolutions (the FC box head) keeps its inputs' layout: it flattens
    # them, and a channels-last copy would only be copied back.
    def cast_inputs(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return _cast_floats(args, dtype, channels_last=has_convs)

    def cast_outputs(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        if keep_source:
            return _upcast_keeping_source(output)
        return _cast_floats(output, torch.float32)

    modules[0].register_forward_pre_hook(cast_inputs)
    modules[-1].register_forward_hook(cast_outputs)


def _as_list(module: nn.Module | None) -> list[nn.Module]:
    if module is None:
        return []
    return list(module) if isinstance(module, nn.ModuleList) else [module]


def _head_blocks(model: nn.Module) -> Iterable[list[nn.Module]]:
    """The chains of heavy head layers of the detector families, each ending before the
    head's last (output) layer."""
    rpn_head = getattr(getattr(model, "proposal_generator", None), "rpn_head", None)
    if rpn_head is not None and hasattr(rpn_head, "conv"):
        yield [rpn_head.conv]
    roi_heads = getattr(model, "roi_heads", None)
    for box_head in _as_list(getattr(roi_heads, "box_head", None)):
        yield [box_head]
    mask_head = getattr(roi_heads, "mask_head", None)
    if mask_head is not None and hasattr(mask_head, "deconv"):
        yield [*mask_head.conv_norm_relus, mask_head.deconv]
    retina_head = getattr(model, "head", None)
    for name in ("cls_subnet", "bbox_subnet"):
        if isinstance(getattr(retina_head, name, None), nn.Module):
            yield [getattr(retina_head, name)]
    sem_seg_head = getattr(model, "sem_seg_head", None)
    for name in getattr(sem_seg_head, "in_features", []):
        yield [getattr(sem_seg_head, name)]


def set_inference_precision(model: nn.Module, precision: str) -> nn.Module:
    """Convert a built, loaded, eval-mode detector to `precision` ("fp32", "bf16", "fp16").

    Call it once, after loading weights; "fp32" returns `model` unchanged. The backbone and
    the heads' hidden layers run in the low dtype, the rest in float32 (see the module
    docstring). Returns `model`, converted in place.
    """
    device = next(model.parameters()).device
    dtype = precision_dtype(precision, device)
    if dtype == torch.float32:
        return model
    if model.training:
        raise ValueError("MODEL.PRECISION other than fp32 is for inference: call model.eval()")
    _low_precision_block([model.get_submodule("backbone")], dtype, keep_source=True)
    for block in _head_blocks(model):
        _low_precision_block(block, dtype)
    return model


def prepare_for_inference(model: nn.Module, precision: str, *, channels_last: bool) -> nn.Module:
    """A built, loaded, eval-mode detector as `DefaultPredictor` and `masktron eval` run it:
    `set_inference_precision(model, precision)` (`MODEL.PRECISION`), then channels-last
    convolution weights when `channels_last` (`MODEL.CHANNELS_LAST`,
    `masktron.models.channels_last`). Returns `model`, converted in place."""
    set_inference_precision(model, precision)
    if channels_last:
        set_channels_last(model)
    return model

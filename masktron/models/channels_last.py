"""Channels-last convolutions for inference (`MODEL.CHANNELS_LAST`, docs/speed.md).

PyTorch runs a convolution in the channels-last (NHWC) layout when its input or its weight is
channels-last, and returns a channels-last output, so converting the weights is enough: the
image enters in (N, C, H, W) order, the first convolution's output is channels-last, and every
layer after it (ReLU, sums, pooling, nearest upsampling, the next convolutions) keeps that
layout. On CPUs oneDNN then skips the reorders to and from its blocked layout that it makes
around every call on (N, C, H, W)-contiguous tensors: the R50-FPN backbone runs about 1.4x to
1.8x faster in float32 (benchmarks/bench_maskrcnn_cpu.py).

The layout changes oneDNN's summation order, so outputs move by float32 rounding (about 2e-5
of a feature map's range): close, not bit-identical, which is why it is a switch.
"""

from __future__ import annotations

import torch
from torch import nn


def set_channels_last(model: nn.Module) -> nn.Module:
    """Make every convolution weight of `model` channels-last, in place; returns `model`.

    Parameter objects are kept (their data is re-laid out), so optimizers and hooks holding
    them stay valid; values, names and shapes of the state dict are unchanged.
    """
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and layer.weight.dim() == 4:
            with torch.no_grad():
                layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
    return model

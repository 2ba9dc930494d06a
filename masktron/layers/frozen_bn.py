"""Normalisation layers: `FrozenBatchNorm2d` (fixed affine) and `get_norm` by Detectron2's names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers.

    `y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, folded into one scale and
    shift. The buffers are named as in `nn.BatchNorm2d` (weight, bias, running_mean, running_var)
    so Detectron2 checkpoints load; a file without statistics leaves mean 0 / var 1.

    Args:
        num_features: channels C of the (N, C, H, W) input.
        eps: added to the variance (Detectron2 uses 1e-5).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The folded affine map, y = x * scale + shift, as two (C,) tensors."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift()
        scale = scale.reshape(1, -1, 1, 1).to(x.dtype)  # (C,) -> (1, C, 1, 1)
        shift = shift.reshape(1, -1, 1, 1).to(x.dtype)  # (C,) -> (1, C, 1, 1)
        return torch.addcmul(shift, x, scale)

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool, *args: Any
    ) -> None:
        # Checkpoints of nn.BatchNorm2d carry this extra counter; it means nothing here.
        state_dict.pop(prefix + "num_batches_tracked", None)
        # Caffe2-era files hold only the affine part: their statistics are mean 0 / var 1.
        if prefix + "weight" in state_dict and prefix + "running_mean" not in state_dict:
            state_dict[prefix + "running_mean"] = torch.zeros_like(self.running_mean)
            state_dict[prefix + "running_var"] = torch.ones_like(self.running_var)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args)

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d(num_features={self.num_features}, eps={self.eps})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm in `module`, recursively, by an equal FrozenBatchNorm2d."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = cls(module.num_features, module.eps)
            if module.affine:
                frozen.weight.data.copy_(module.weight.detach())
                frozen.bias.data.copy_(module.bias.detach())
            if module.running_mean is not None and module.running_var is not None:
                frozen.running_mean.data.copy_(module.running_mean)
                frozen.running_var.data.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


def get_norm(norm: str, out_channels: int) -> nn.Module | None:
    """A normalisation layer by Detectron2's config name, or None for "".

    Names: "BN", "SyncBN", "FrozenBN", "GN" (32 groups), "LN" (channels-first LayerNorm),
    "naiveSyncBN" / "naiveSyncBN_N" (`NaiveSyncBatchNorm`, the second weighting processes by
    batch size).
    """
    if not norm:
        return None
    if norm in ("naiveSyncBN", "naiveSyncBN_N"):
        from masktron.layers.batch_norm import NaiveSyncBatchNorm

        return NaiveSyncBatchNorm(out_channels, stats_mode="N" if norm.endswith("_N") else "")
    if norm == "BN":
        return nn.BatchNorm2d(out_channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(out_channels)
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(out_channels)
    if norm == "GN":
        return nn.GroupNorm(32, out_channels)
    if norm == "LN":
        return LayerNorm2d(out_channels)
    raise ValueError(
        f"unknown norm {norm!r}; expected one of '', BN, SyncBN, naiveSyncBN, naiveSyncBN_N, "
        "FrozenBN, GN, LN"
    )


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) tensor, at every position."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]

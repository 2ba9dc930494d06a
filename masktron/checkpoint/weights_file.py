"""The weights of a trained model alone, for inference: `model_final_weights.pth`.

A training checkpoint (`model_final.pth`) also holds the optimizer's state (about twice the
model's size with SGD momentum, three times with AdamW) and the trainer's, which `--resume`
needs and inference does not. This file holds `{"model": state_dict}` only, optionally in
float16 (half the size again; loaded back into float32 models, as any checkpoint is).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from masktron.utils.file_io import atomic_open

__all__ = ["save_model_weights"]


def save_model_weights(model: nn.Module, path: str | os.PathLike, *, half: bool = False) -> str:
    """Write `model`'s state dict to `path` atomically (float tensors as float16 with `half`).

    Returns:
        The path written.
    """
    state = {
        k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point() else v.cpu())
        for k, v in model.state_dict().items()
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save({"model": state, "__author__": "masktron"}, f)
    return str(path)

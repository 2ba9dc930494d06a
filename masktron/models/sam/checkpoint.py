"""Safe, strict loading of Meta's SAM checkpoints (`sam_vit_{b,l,h}_*.pth`).

The file is read with `torch.load(weights_only=True)` (no arbitrary unpickling). Every failure is
reported as a `SamCheckpointError` naming the file and, where relevant, the tensor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from masktron.checkpoint import CheckpointError, get_local_path, load_torch

# Width of the ViT tokens of each released model, used to name the variant of a mismatched file.
_VARIANT_BY_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_WIDTH_KEY = "image_encoder.patch_embed.proj.weight"
_MAX_LISTED = 5


class SamCheckpointError(ValueError):
    """A SAM checkpoint that cannot be loaded into the requested model."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat `{name: tensor}` state dict from a `.pth` file.

    A dict that wraps the state dict under `model` or `state_dict` (as training scripts often
    save) is unwrapped.

    Args:
        path: a local file, or a URL (downloaded once into masktron's cache).

    Raises:
        FileNotFoundError: no such file.
        SamCheckpointError: unreadable, truncated or not a state dict of tensors.
    """
    path = get_local_path(path)  # a URL is downloaded into the cache once
    try:
        data = load_torch(path)
    except CheckpointError as e:  # truncated, corrupt, or holding objects that could run code
        raise SamCheckpointError(str(e)) from e
    if isinstance(data, Mapping) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        for wrapper in ("model", "state_dict"):
            if isinstance(data.get(wrapper), Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping):
        raise SamCheckpointError(
            f"{path}: expected a state dict (a mapping of tensor names to tensors), "
            f"found {type(data).__name__}"
        )
    bad = [k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        k = bad[0]
        raise SamCheckpointError(
            f"{path}: entry {k!r} is a {type(data[k]).__name__}, not a tensor; "
            f"expected a flat state dict of tensors"
        )
    return dict(data)


def infer_sam_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The variant ("vit_b", "vit_l", "vit_h") of a state dict by its encoder width, or None."""
    weight = state_dict.get(_WIDTH_KEY)
    if weight is None or weight.ndim != 4:
        return None
    return _VARIANT_BY_WIDTH.get(int(weight.shape[0]))


def _variant_hint(state_dict: Mapping[str, torch.Tensor]) -> str:
    name = infer_sam_variant(state_dict)
    return f" (the file looks like a {name} checkpoint)" if name else ""


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def load_sam_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a SAM checkpoint into `model` strictly: same names, same shapes.

    Raises:
        FileNotFoundError: no such file.
        SamCheckpointError: unreadable file, missing or unexpected tensors, or a shape mismatch
            (the message names the file, the tensor and both shapes).
    """
    load_sam_state_dict(model, read_state_dict(path), path)


def load_sam_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    assign: bool = False,
) -> None:
    """Load a state dict already read from `path` (named in errors) into `model`, strictly.

    With `assign`, the model's tensors are replaced by the file's (cast to the model's dtype)
    instead of copied into: a model built on the "meta" device is materialised without being
    initialised first.
    """
    path = os.fspath(path)
    expected = model.state_dict()
    file_variant, model_variant = infer_sam_variant(state_dict), infer_sam_variant(expected)
    if file_variant and model_variant and file_variant != model_variant:
        raise SamCheckpointError(
            f"{path}: a {file_variant} checkpoint, but the model is {model_variant}; build it "
            f'with sam_model_registry["{file_variant}"]'
        )
    hint = _variant_hint(state_dict)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s): {_listing(unexpected)}")
        raise SamCheckpointError(f"{path}: does not match the model{hint}; " + "; ".join(parts))
    for name, target in expected.items():
        found = state_dict[name]
        if tuple(found.shape) != tuple(target.shape):
            raise SamCheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(found.shape)}, the model expects "
                f"{tuple(target.shape)}{hint}"
            )
        if not found.is_floating_point():
            raise SamCheckpointError(f"{path}: tensor {name!r} has dtype {found.dtype}, not float")
    if assign:
        state_dict = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=assign)

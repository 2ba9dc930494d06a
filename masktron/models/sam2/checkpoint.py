"""SAM 2 checkpoints: Meta's released files (`{"model": state_dict}`), read safely and strictly.

Variants are named as Meta's configs: `sam2.1_hiera_{t,s,b+,l}` and `sam2_hiera_{t,s,b+,l}`
(SAM 2.0). The variant of a file is read from its tensors: the trunk width (96: tiny or small,
112: base+, 144: large), the number of trunk blocks (12 tiny, 16 small) and the tensors SAM 2.1
added (`no_obj_embed_spatial`, `obj_ptr_tpos_proj`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from masktron.models.sam.checkpoint import SamCheckpointError, load_sam_state_dict, read_state_dict

SIZES = ("t", "s", "b+", "l")
VARIANTS = tuple(f"{v}_hiera_{s}" for v in ("sam2.1", "sam2") for s in SIZES)
_WIDTH_KEY = "image_encoder.trunk.patch_embed.proj.weight"
_BLOCK_PREFIX = "image_encoder.trunk.blocks."
_SAM21_KEY = "no_obj_embed_spatial"


class Sam2CheckpointError(SamCheckpointError):
    """A SAM 2 checkpoint that cannot be loaded into the requested model."""


def infer_sam2_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The variant (e.g. `sam2.1_hiera_t`) of a SAM 2 state dict, or None if it is not one."""
    weight = state_dict.get(_WIDTH_KEY)
    if weight is None or weight.ndim != 4:
        return None
    blocks = {
        k[len(_BLOCK_PREFIX) :].split(".", 1)[0] for k in state_dict if k.startswith(_BLOCK_PREFIX)
    }
    width, depth = int(weight.shape[0]), len(blocks)
    size = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}.get((width, depth))
    if size is None:
        return None
    version = "sam2.1" if _SAM21_KEY in state_dict else "sam2"
    return f"{version}_hiera_{size}"


def read_sam2_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM 2 state dict (Meta's `{"model": ...}` wrapper is unwrapped) without unpickling
    arbitrary objects.

    Raises:
        FileNotFoundError: no such file.
        Sam2CheckpointError: unreadable, truncated, or not a state dict of tensors.
    """
    try:
        return read_state_dict(path)
    except Sam2CheckpointError:
        raise
    except SamCheckpointError as e:
        raise Sam2CheckpointError(str(e)) from e


def load_sam2_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    assign: bool = False,
) -> None:
    """Load a state dict read from `path` (named in errors) into `model`, strictly.

    `assign` replaces the model's tensors by the file's (for a model built on the meta device).

    Raises:
        Sam2CheckpointError: a file of another variant, missing or unexpected tensors, or a shape
            mismatch (the message names the file, the tensor and both shapes).
    """
    found, expected = infer_sam2_variant(state_dict), infer_sam2_variant(model.state_dict())
    if found and expected and found != expected:
        raise Sam2CheckpointError(
            f"{os.fspath(path)}: a {found} checkpoint, but the model is {expected}; build it with "
            f'build_sam2("{found}.yaml", ...) or build_sam2(ckpt_path=...) to read the variant '
            f"from the file"
        )
    try:
        load_sam_state_dict(model, state_dict, path, assign=assign)
    except Sam2CheckpointError:
        raise
    except SamCheckpointError as e:
        hint = f" (the file looks like {found})" if found else " (not a SAM 2 checkpoint)"
        raise Sam2CheckpointError(f"{e}{hint if found != expected or not found else ''}") from e

"""Detectron2's `detectron2.checkpoint.c2_model_loading` functions over masktron's matching.

`align_and_update_state_dicts` is the name-matching heuristic `DetectionCheckpointer` applies to
Caffe2 files and to files loaded with `?matching_heuristics=True`: optionally convert Caffe2
names, then give each model name the checkpoint tensor whose name is its longest whole-component
suffix (`layer1.weight` -> `block1.layer1.weight`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from masktron.checkpoint.c2_names import convert_c2_name
from masktron.checkpoint.c2_names import convert_c2_names as convert_c2_detectron_names
from masktron.checkpoint.matching import align_by_suffix, strip_prefix_if_present

__all__ = [
    "align_and_update_state_dicts",
    "convert_basic_c2_names",
    "convert_c2_detectron_names",
]


def convert_basic_c2_names(original_keys: list[str]) -> list[str]:
    """Caffe2 blob names (`res2_0_branch2a_w`) as masktron name suffixes, in the same order."""
    return [convert_c2_name(k) for k in original_keys]


def align_and_update_state_dicts(
    model_state_dict: Mapping[str, torch.Tensor],
    ckpt_state_dict: Mapping[str, torch.Tensor],
    c2_conversion: bool = True,
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors renamed to the model's names by longest-suffix matching.

    Args:
        model_state_dict: `model.state_dict()` (a DataParallel/DDP "module." prefix is fine).
        ckpt_state_dict: the checkpoint's name -> tensor.
        c2_conversion: convert Caffe2/Detectron1 blob names first.

    Returns:
        model name -> tensor for every match of equal shape (ready for `load_state_dict`).
    """
    checkpoint = dict(strip_prefix_if_present(dict(ckpt_state_dict), "module."))
    original = None
    if c2_conversion:
        checkpoint, original = convert_c2_detectron_names(checkpoint)
    shapes = {k: tuple(v.shape) for k, v in model_state_dict.items()}
    matched = align_by_suffix(shapes, checkpoint, original).state_dict
    # Checkpoint names that stand for several model names (the same suffix) are matched to one
    # only; a DataParallel model's "module." names match the checkpoint's plain names.
    return matched

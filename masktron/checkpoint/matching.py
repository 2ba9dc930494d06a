"""Matching checkpoint names to a model's names, shape checks, and readable key reports.

Checkpoints from other code bases name the same tensors with different prefixes: an ImageNet
backbone file says `res2.0.conv1.weight` where the detector says
`backbone.bottom_up.res2.0.conv1.weight`. `align_by_suffix` gives each model name the longest
checkpoint name that is a whole-component suffix of it (`conv1.weight` matches `res2.0.conv1.weight`
but `fcn1.weight` does not match `mask_fcn1.weight`), as Detectron2's matching heuristics do.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = [
    "AlignResult",
    "IncompatibleKeys",
    "align_by_suffix",
    "filter_reused_missing_keys",
    "group_keys",
    "missing_keys_message",
    "strip_prefix_if_present",
    "unexpected_keys_message",
]

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]


class IncompatibleKeys(NamedTuple):
    """What a load could not use: like `load_state_dict`'s result, plus skipped shapes.

    Attributes:
        missing_keys: model names that received no value from the checkpoint.
        unexpected_keys: checkpoint names (as written in the file) that the model does not use.
        incorrect_shapes: (model name, shape in checkpoint, shape in model) of skipped tensors.
    """

    missing_keys: list[str]
    unexpected_keys: list[str]
    incorrect_shapes: list[tuple[str, Shape, Shape]]


@dataclass
class AlignResult:
    """The outcome of `align_by_suffix`.

    Attributes:
        state_dict: model name -> checkpoint tensor, for every match of equal shape.
        sources: model name -> the checkpoint name it was loaded from (as written in the file).
        unexpected_keys: checkpoint names (as written in the file) that matched no model name.
        incorrect_shapes: (model name, shape in checkpoint, shape in model) of skipped matches.
    """

    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    unexpected_keys: list[str] = field(default_factory=list)
    incorrect_shapes: list[tuple[str, Shape, Shape]] = field(default_factory=list)


def strip_prefix_if_present(state_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`state_dict` without `prefix` on its names, if every name has it (e.g. DDP's "module.")."""
    if not state_dict or not all(k.startswith(prefix) for k in state_dict):
        return state_dict
    return {k[len(prefix) :]: v for k, v in state_dict.items()}


def _suffixes(name: str) -> Iterable[str]:
    """`a.b.c` -> `a.b.c`, `b.c`, `c`: the whole-component suffixes of a name, longest first."""
    yield name
    for i, ch in enumerate(name):
        if ch == ".":
            yield name[i + 1 :]


def align_by_suffix(
    model_shapes: Mapping[str, Shape],
    checkpoint: Mapping[str, torch.Tensor],
    original_names: Mapping[str, str] | None = None,
) -> AlignResult:
    """Match checkpoint tensors to model names by the longest whole-component suffix.

    Args:
        model_shapes: model name -> shape (from `model.state_dict()`).
        checkpoint: checkpoint name (possibly converted) -> tensor.
        original_names: converted checkpoint name -> name in the file, for reports.

    Returns:
        An `AlignResult`; matches whose shapes differ are left out and listed.

    Raises:
        ValueError: one checkpoint tensor matches two model names with the right shape.
    """
    original_names = original_names or {}
    result = AlignResult()
    used_by: dict[str, str] = {}  # checkpoint name -> model name
    tried: set[str] = set()
    for model_key in sorted(model_shapes):
        ckpt_key = next((s for s in _suffixes(model_key) if s in checkpoint), None)
        if ckpt_key is None:
            continue
        tried.add(ckpt_key)
        value = checkpoint[ckpt_key]
        source = original_names.get(ckpt_key, ckpt_key)
        model_shape = tuple(model_shapes[model_key])
        if tuple(value.shape) != model_shape:
            result.incorrect_shapes.append((model_key, tuple(value.shape), model_shape))
            continue
        if ckpt_key in used_by:
            raise ValueError(
                f"checkpoint tensor {source!r} matches two model names, {used_by[ckpt_key]!r} and "
                f"{model_key!r}; rename it in the file so that it names one of them"
            )
        used_by[ckpt_key] = model_key
        result.state_dict[model_key] = value
        result.sources[model_key] = source
        logger.debug("%s loaded from %s, shape %s", model_key, source, model_shape)
    result.unexpected_keys = [
        original_names.get(k, k) for k in sorted(checkpoint) if k not in used_by and k not in tried
    ]
    return result


def filter_reused_missing_keys(model: nn.Module, keys: list[str]) -> list[str]:
    """Drop missing names whose tensor was loaded under another name (shared modules)."""
    keyset = set(keys)
    names_of: dict[int, set[str]] = defaultdict(set)
    for prefix, module in model.named_modules(remove_duplicate=False):
        tensors = list(module.named_parameters(recurse=False, remove_duplicate=False))
        tensors += list(module.named_buffers(recurse=False, remove_duplicate=False))
        for name, tensor in tensors:
            if tensor is not None:
                names_of[id(tensor)].add(f"{prefix}.{name}" if prefix else name)
    for names in names_of.values():
        if names & keyset and not names <= keyset:
            keyset -= names
    return [k for k in keys if k in keyset]


def group_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Group names by everything before their last ".": `a.b.weight`, `a.b.bias` -> `a.b: [...]`."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        head, dot, tail = key.rpartition(".")
        if dot:
            groups[head].append(tail)
        else:
            groups.setdefault(key, [])
    return dict(groups)


def _format_groups(keys: Iterable[str]) -> str:
    lines = []
    for head, tails in group_keys(keys).items():
        if not tails:
            lines.append(f"  {head}")
        elif len(tails) == 1:
            lines.append(f"  {head}.{tails[0]}")
        else:
            lines.append(f"  {head}.{{{', '.join(tails)}}}")
    return "\n".join(lines)


def missing_keys_message(keys: Iterable[str]) -> str:
    """A log message listing model names the checkpoint did not provide, grouped by prefix."""
    return "Some model parameters or buffers are not found in the checkpoint:\n" + _format_groups(
        keys
    )


def unexpected_keys_message(keys: Iterable[str]) -> str:
    """A log message listing checkpoint names the model does not use, grouped by prefix."""
    return "The checkpoint contains keys that are not used by the model:\n" + _format_groups(keys)

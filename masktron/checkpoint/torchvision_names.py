"""torchvision ImageNet ResNet names -> masktron backbone name suffixes.

`torchvision.models.resnet50(weights=...).state_dict()` names its layers `conv1`, `bn1`,
`layer1.0.conv1`, `layer1.0.bn1`, `layer1.0.downsample.0/1` and `fc`; masktron (like Detectron2)
uses `stem.conv1`, `stem.conv1.norm`, `res2.0.conv1`, `res2.0.conv1.norm`, `res2.0.shortcut(.norm)`.
The converted names are suffixes that `matching.align_by_suffix` completes
(`backbone.bottom_up.res2.0.conv1.weight`).

These weights expect RGB input normalised by ImageNet's mean/std and `STRIDE_IN_1X1=False`
(Detectron2's `tools/convert-torchvision-to-d2.py` notes the same config changes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["convert_torchvision_resnet_names", "is_torchvision_resnet"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_BN = re.compile(r"^bn([123])$")
_LAYER = re.compile(r"^layer([1-4])$")


def is_torchvision_resnet(names: Iterable[str]) -> bool:
    """Whether state-dict names follow torchvision's ResNet layout (`conv1`, `bn1`, `layer1`)."""
    names = set(names)
    return (
        "conv1.weight" in names
        and "bn1.weight" in names
        and any(n.startswith("layer1.") for n in names)
    )


def _convert(name: str) -> str:
    parts = name.split(".")
    if not _LAYER.match(parts[0]):
        parts.insert(0, "stem")  # conv1.weight / bn1.* belong to the stem
    out = []
    for i, part in enumerate(parts):
        if m := _LAYER.match(part):
            out.append(f"res{int(m.group(1)) + 1}")
        elif m := _BN.match(part):
            out.extend([f"conv{m.group(1)}", "norm"])
        elif part == "downsample" and i + 1 < len(parts) and parts[i + 1] in ("0", "1"):
            out.append("shortcut")
        elif i > 0 and parts[i - 1] == "downsample" and part in ("0", "1"):
            if part == "1":
                out.append("norm")  # downsample.0 is the conv, downsample.1 its BatchNorm
        else:
            out.append(part)
    return ".".join(out)


def convert_torchvision_resnet_names(weights: dict[str, T]) -> tuple[dict[str, T], dict[str, str]]:
    """Rename a torchvision ResNet/ResNeXt state dict to masktron backbone name suffixes.

    Args:
        weights: torchvision name -> tensor.

    Returns:
        (new name -> tensor, new name -> torchvision name). The classifier (`fc.*`) and the
        BatchNorm counters (`num_batches_tracked`, unused by frozen BatchNorm) are dropped.
    """
    renamed: dict[str, T] = {}
    original: dict[str, str] = {}
    for old, value in weights.items():
        if old.startswith("fc.") or old.endswith(".num_batches_tracked"):
            continue
        new = _convert(old)
        renamed[new] = value
        original[new] = old
    logger.info("Converted %d torchvision ResNet names to masktron names", len(renamed))
    return renamed, original

"""Caffe2 / Detectron1 weight names -> Detectron2 (and masktron) state-dict names.

Caffe2 files are flat `{blob name: array}` dicts: ImageNet backbones (`conv1_w`, `res_conv1_bn_s`,
`res2_0_branch2a_w`, `fc1000_w`, ...) and Detectron1 detectors (`fpn_inner_res5_2_sum_w`,
`conv_rpn_fpn2_w`, `fc6_w`, `cls_score_w`, `_[mask]_fcn1_w`, `conv5_mask_w`, ...). The names
produced here are *suffixes* of masktron's names (`res2.0.conv1.weight`, `box_head.fc1.weight`);
`matching.align_by_suffix` then finds the full names in the model.

Detectron1 also ordered classes differently: its box classifier has background at row 0
(masktron/Detectron2: last), and its box regressor and mask predictor carry a background slot
(4 rows / 1 channel) that class-specific heads here do not have. `convert_c2_names` fixes both.
"""

from __future__ import annotations

import logging
import re

import torch

__all__ = ["convert_c2_names", "convert_c2_name"]

logger = logging.getLogger(__name__)

# (pattern, replacement, is_regex), applied in order after "_" -> "." (the order matters: e.g.
# `bn_b` first becomes `bn.bias` through the generic `.b` rule, then `norm.bias`).
_RULES: list[tuple[str, str, bool]] = [
    # parameter kind
    (r"\.b$", ".bias", True),
    (r"\.w$", ".weight", True),
    # BatchNorm / affine / GroupNorm -> "norm"
    (r"bn\.s$", "norm.weight", True),
    (r"bn\.bias$", "norm.bias", True),
    (r"bn\.rm$", "norm.running_mean", True),
    (r"bn\.running\.mean$", "norm.running_mean", True),
    (r"bn\.riv$", "norm.running_var", True),
    (r"bn\.running\.var$", "norm.running_var", True),
    (r"bn\.gamma$", "norm.weight", True),
    (r"bn\.beta$", "norm.bias", True),
    (r"gn\.s$", "norm.weight", True),
    (r"gn\.bias$", "norm.bias", True),
    # stem: `conv1_w` and `res_conv1_bn_*` (anchored: `conv1` elsewhere is a block's conv)
    (r"^res\.conv1\.norm\.", "conv1.norm.", True),
    (r"^conv1\.", "stem.conv1.", True),
    # bottleneck blocks
    (".branch1.", ".shortcut.", False),
    (".branch2a.", ".conv1.", False),
    (".branch2b.", ".conv2.", False),
    (".branch2c.", ".conv3.", False),
    # RPN: with FPN the head is stored once, at level 2, and shared by all levels
    ("conv.rpn.fpn2", "proposal_generator.rpn_head.conv", False),
    ("conv.rpn", "proposal_generator.rpn_head.conv", False),
    ("rpn.bbox.pred.fpn2", "proposal_generator.rpn_head.anchor_deltas", False),
    ("rpn.cls.logits.fpn2", "proposal_generator.rpn_head.objectness_logits", False),
    ("rpn.bbox.pred", "proposal_generator.rpn_head.anchor_deltas", False),
    ("rpn.cls.logits", "proposal_generator.rpn_head.objectness_logits", False),
    # Fast R-CNN box head and predictor
    (r"^bbox\.pred", "bbox_pred", True),
    (r"^cls\.score", "cls_score", True),
    (r"^fc6\.", "box_head.fc1.", True),
    (r"^fc7\.", "box_head.fc2.", True),
    (r"^head\.conv", "box_head.conv", True),  # 4conv1fc head: head_conv1_w, head_conv1_gn_s
]

_MASK_RULES: list[tuple[str, str, bool]] = [
    (".[mask].fcn", "mask_head.mask_fcn", False),  # _[mask]_fcn1_w
    (r"^\.mask\.fcn", "mask_head.mask_fcn", True),  # _mask_fcn1_w
    ("mask.fcn.logits", "mask_head.predictor", False),
    ("conv5.mask", "mask_head.deconv", False),
    # keypoint head blobs are plain `conv_fcnN` / `kps_score_lowres`
    ("conv.fcn", "roi_heads.keypoint_head.conv_fcn", False),
    ("kps.score.lowres", "roi_heads.keypoint_head.score_lowres", False),
    ("kps.score.", "roi_heads.keypoint_head.score.", False),
]


def _apply(name: str, rules: list[tuple[str, str, bool]]) -> str:
    for pattern, replacement, is_regex in rules:
        if is_regex:
            name = re.sub(pattern, replacement, name)
        else:
            name = name.replace(pattern, replacement)
    return name


def _fpn_name(name: str) -> str:
    """`fpn.inner.res4.5.sum.lateral.weight` -> `fpn_lateral4.weight`;
    `fpn.res4.5.sum.weight` -> `fpn_output4.weight` (with `.norm` kept for GN variants)."""
    parts = name.split(".")
    norm = ".norm" if "norm" in parts else ""
    if name.startswith("fpn.inner.res"):
        return f"fpn_lateral{int(parts[2][3:])}{norm}.{parts[-1]}"
    if name.startswith("fpn.res"):
        return f"fpn_output{int(parts[1][3:])}{norm}.{parts[-1]}"
    return name


def convert_c2_name(name: str) -> str:
    """One Caffe2/Detectron1 blob name as a masktron name suffix, e.g.
    `res2_0_branch2a_bn_s` -> `res2.0.conv1.norm.weight`, `fc6_w` -> `box_head.fc1.weight`."""
    name = {"pred_b": "linear_b", "pred_w": "linear_w"}.get(name, name)
    name = _apply(name.replace("_", "."), _RULES)
    return _apply(_fpn_name(name), _MASK_RULES)


def convert_c2_names(
    weights: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename a Caffe2/Detectron1 state dict and fix Detectron1's class layout.

    Args:
        weights: blob name -> tensor (any shapes; the `_momentum` blobs already removed).

    Returns:
        (new name -> tensor, new name -> original blob name). The ImageNet classifier
        (`fc1000_*`) is dropped. `cls_score` rows are rotated so background is last; class-specific
        `bbox_pred` loses its first 4 rows and the mask predictor its first channel (background).

    Raises:
        ValueError: two blobs map to the same name.
    """
    renamed: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}
    dropped = []
    for old in sorted(weights):
        if old.startswith("fc1000_"):
            dropped.append(old)
            continue
        new = convert_c2_name(old)
        if new in original:
            raise ValueError(f"Caffe2 blobs {original[new]!r} and {old!r} both map to {new!r}")
        value = weights[old]
        if new.startswith("bbox_pred.") and value.shape[0] > 4:
            value = value[4:]  # (4 + 4K, ...) -> (4K, ...): drop the background box
            logger.info("%s: dropped background box regression, shape now %s", new, value.shape)
        elif new.startswith("mask_head.predictor.") and value.shape[0] > 1:
            value = value[1:]  # (1 + K, ...) -> (K, ...): drop the background mask
            logger.info("%s: dropped background mask channel, shape now %s", new, value.shape)
        elif new.startswith("cls_score."):
            value = torch.cat([value[1:], value[:1]])  # background row 0 -> last
            logger.info("%s: moved background class from row 0 to row %d", new, len(value) - 1)
        renamed[new] = value
        original[new] = old
    if dropped:
        logger.info("Ignored the ImageNet classifier in the checkpoint: %s", ", ".join(dropped))
    return renamed, original

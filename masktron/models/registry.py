"""Detectron2's registries for user parts, one per slot a config names.

The rule (see `masktron.models.build`): a built-in name in the config (`StandardROIHeads`,
`build_resnet_fpn_backbone`, ...) is built by masktron's explicit `build_*` function; any other
name is looked up here and called as Detectron2 calls it:

| registry                      | config key                        | called as                  |
| ----------------------------- | --------------------------------- | -------------------------- |
| `META_ARCH_REGISTRY`          | `MODEL.META_ARCHITECTURE`         | `cls(cfg)`                 |
| `BACKBONE_REGISTRY`           | `MODEL.BACKBONE.NAME`             | `fn(cfg, input_shape)`     |
| `PROPOSAL_GENERATOR_REGISTRY` | `MODEL.PROPOSAL_GENERATOR.NAME`   | `cls(cfg, shapes)`         |
| `RPN_HEAD_REGISTRY`           | `MODEL.RPN.HEAD_NAME`             | `cls(cfg, [shape, ...])`   |
| `ROI_HEADS_REGISTRY`          | `MODEL.ROI_HEADS.NAME`            | `cls(cfg, shapes)`         |
| `ROI_BOX_HEAD_REGISTRY`       | `MODEL.ROI_BOX_HEAD.NAME`         | `cls(cfg, pooled_shape)`   |
| `ROI_MASK_HEAD_REGISTRY`      | `MODEL.ROI_MASK_HEAD.NAME`        | `cls(cfg, pooled_shape)`   |
| `SEM_SEG_HEADS_REGISTRY`      | `MODEL.SEM_SEG_HEAD.NAME`         | `cls(cfg, shapes)`         |

The built-in parts are listed in the registries too (by `masktron.models.build`), so
`ROI_HEADS_REGISTRY.get("StandardROIHeads")(cfg, shapes)` works as in Detectron2.
"""

from __future__ import annotations

from masktron.utils.registry import Registry

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PROPOSAL_GENERATOR_REGISTRY",
    "ROI_BOX_HEAD_REGISTRY",
    "ROI_HEADS_REGISTRY",
    "ROI_MASK_HEAD_REGISTRY",
    "RPN_HEAD_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
]

META_ARCH_REGISTRY = Registry("META_ARCH")
BACKBONE_REGISTRY = Registry("BACKBONE")
PROPOSAL_GENERATOR_REGISTRY = Registry("PROPOSAL_GENERATOR")
RPN_HEAD_REGISTRY = Registry("RPN_HEAD")
ROI_HEADS_REGISTRY = Registry("ROI_HEADS")
ROI_BOX_HEAD_REGISTRY = Registry("ROI_BOX_HEAD")
ROI_MASK_HEAD_REGISTRY = Registry("ROI_MASK_HEAD")
SEM_SEG_HEADS_REGISTRY = Registry("SEM_SEG_HEADS")

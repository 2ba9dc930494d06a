"""Config versions: Detectron2's `upgrade_config` / `downgrade_config` and old YAML files.

Detectron2 bumped `VERSION` twice, both times by renaming keys (v0 -> v1: the RPN head's name;
v1 -> v2: a bulk rename before its public release, e.g. `MODEL.WEIGHT` -> `MODEL.WEIGHTS`). A
file without `VERSION` is taken as v1 when it has a v1-only key (`MODEL.WEIGHT`, `TEST.AUG_ON`),
else as the latest version. Files of an older version are upgraded before they are merged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from masktron.config.config import CfgNode

__all__ = ["downgrade_config", "guess_version", "upgrade_config", "upgrade_dict"]

logger = logging.getLogger(__name__)

LATEST_VERSION = 2

# (old name, new name) of each version step; step k turns a v(k-1) config into a vk one.
_RENAMES: dict[int, list[tuple[str, str]]] = {
    1: [("MODEL.RPN_HEAD.NAME", "MODEL.RPN.HEAD_NAME")],
    2: [
        ("MODEL.WEIGHT", "MODEL.WEIGHTS"),
        ("MODEL.PANOPTIC_FPN.SEMANTIC_LOSS_SCALE", "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.RPN_LOSS_SCALE", "MODEL.RPN.LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.INSTANCE_LOSS_SCALE", "MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT"),
        ("MODEL.PANOPTIC_FPN.COMBINE_ON", "MODEL.PANOPTIC_FPN.COMBINE.ENABLED"),
        (
            "MODEL.PANOPTIC_FPN.COMBINE_OVERLAP_THRESHOLD",
            "MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH",
        ),
        (
            "MODEL.PANOPTIC_FPN.COMBINE_STUFF_AREA_LIMIT",
            "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT",
        ),
        (
            "MODEL.PANOPTIC_FPN.COMBINE_INSTANCES_CONFIDENCE_THRESHOLD",
            "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH",
        ),
        ("MODEL.ROI_HEADS.SCORE_THRESH", "MODEL.ROI_HEADS.SCORE_THRESH_TEST"),
        ("MODEL.ROI_HEADS.NMS", "MODEL.ROI_HEADS.NMS_THRESH_TEST"),
        ("MODEL.RETINANET.INFERENCE_SCORE_THRESHOLD", "MODEL.RETINANET.SCORE_THRESH_TEST"),
        ("MODEL.RETINANET.INFERENCE_TOPK_CANDIDATES", "MODEL.RETINANET.TOPK_CANDIDATES_TEST"),
        ("MODEL.RETINANET.INFERENCE_NMS_THRESHOLD", "MODEL.RETINANET.NMS_THRESH_TEST"),
        ("TEST.DETECTIONS_PER_IMG", "TEST.DETECTIONS_PER_IMAGE"),
        ("TEST.AUG_ON", "TEST.AUG.ENABLED"),
        ("TEST.AUG_MIN_SIZES", "TEST.AUG.MIN_SIZES"),
        ("TEST.AUG_MAX_SIZE", "TEST.AUG.MAX_SIZE"),
        ("TEST.AUG_FLIP", "TEST.AUG.FLIP"),
    ],
}
# v1 kept anchors under the RPN or RetinaNet node; v2 moved them to MODEL.ANCHOR_GENERATOR.
_ANCHOR_KEYS = (("ANCHOR_SIZES", "SIZES"), ("ANCHOR_ASPECT_RATIOS", "ASPECT_RATIOS"))


def _has(tree: Any, path: list[str]) -> bool:
    for part in path:
        if part not in tree:
            return False
        tree = tree[part]
    return True


def _move(tree: Any, old: str, new: str, make_node: Any) -> None:
    """Move the value at dotted `old` to dotted `new` (if present), dropping emptied parents."""
    old_path, new_path = old.split("."), new.split(".")
    if not _has(tree, old_path):
        return
    parents = [tree]
    for part in old_path[:-1]:
        parents.append(parents[-1][part])
    value = parents[-1][old_path[-1]]
    del parents[-1][old_path[-1]]
    for depth in range(len(old_path) - 1, 0, -1):  # remove parents the move left empty
        if len(parents[depth]) == 0:
            del parents[depth - 1][old_path[depth - 1]]
    node = tree
    for part in new_path[:-1]:
        if part not in node:
            node[part] = make_node()
        node = node[part]
    node[new_path[-1]] = value


def _upgrade_step(tree: Any, version: int, make_node: Any, complete: bool) -> None:
    for old, new in _RENAMES[version]:
        _move(tree, old, new, make_node)
    if version != 2:
        return
    model = tree["MODEL"] if "MODEL" in tree else {}
    retinanet = model.get("META_ARCHITECTURE") == "RetinaNet"
    source, other = ("RETINANET", "RPN") if retinanet else ("RPN", "RETINANET")
    for old, new in _ANCHOR_KEYS:
        _move(tree, f"MODEL.{source}.{old}", f"MODEL.ANCHOR_GENERATOR.{new}", make_node)
        if complete or _has(tree, ["MODEL", other, old]):
            del tree["MODEL"][other][old]
    if complete or _has(tree, ["MODEL", "RETINANET", "ANCHOR_STRIDES"]):
        del tree["MODEL"]["RETINANET"]["ANCHOR_STRIDES"]


def _downgrade_step(cfg: CfgNode, version: int) -> None:
    for old, new in reversed(_RENAMES[version]):
        _move(cfg, new, old, CfgNode)
    if version == 2:
        for old, new in _ANCHOR_KEYS:
            _move(cfg, f"MODEL.ANCHOR_GENERATOR.{new}", f"MODEL.RPN.{old}", CfgNode)
            cfg.MODEL.RETINANET[old] = cfg.MODEL.RPN[old]
        cfg.MODEL.RETINANET.ANCHOR_STRIDES = []  # unused in every version


def upgrade_config(cfg: CfgNode, to_version: int | None = None) -> CfgNode:
    """A copy of a complete config, upgraded from `cfg.VERSION` to `to_version` (latest)."""
    to_version = LATEST_VERSION if to_version is None else to_version
    if cfg.VERSION > to_version:
        raise ValueError(f"cannot upgrade a config from v{cfg.VERSION} to v{to_version}")
    cfg = cfg.clone()
    for version in range(cfg.VERSION + 1, to_version + 1):
        _upgrade_step(cfg, version, CfgNode, complete=True)
        cfg.VERSION = version
    return cfg


def downgrade_config(cfg: CfgNode, to_version: int) -> CfgNode:
    """A copy of a complete config with an older version's key names (its defaults)."""
    if cfg.VERSION < to_version:
        raise ValueError(f"cannot downgrade a config from v{cfg.VERSION} to v{to_version}")
    cfg = cfg.clone()
    for version in range(cfg.VERSION, to_version, -1):
        _downgrade_step(cfg, version)
        cfg.VERSION = version - 1
    return cfg


def guess_version(data: Mapping, source: str) -> int:
    """The version of a partial config that does not say: v1 if it has a v1-only key."""
    if _has(data, ["MODEL", "WEIGHT"]) or _has(data, ["TEST", "AUG_ON"]):
        logger.warning("%s has no VERSION; assuming it is v1", source)
        return 1
    return LATEST_VERSION


def upgrade_dict(data: dict, source: str) -> dict:
    """A partial config read from a file, its keys renamed to the latest version's."""
    version = data.pop("VERSION", None)
    if version is None:
        version = guess_version(data, source)
    if not isinstance(version, int) or not 0 <= version <= LATEST_VERSION:
        raise ValueError(f"{source}: VERSION must be 0..{LATEST_VERSION}, got {version!r}")
    for step in range(version + 1, LATEST_VERSION + 1):
        _upgrade_step(data, step, dict, complete=False)
    return data

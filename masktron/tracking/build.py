"""Build a tracker from a config (`TRACKER_HEADS.*`), a `_target_` dict, or a short name.

cfg.TRACKER_HEADS.TRACKER_NAME = "BBoxIOUTracker"
tracker = build_tracker_head(cfg)          # Detectron2's entry point
tracker = instantiate_tracker({"_target_": "detectron2.tracking.bbox_iou_tracker.BBoxIOUTracker",
                               "video_height": 540, "video_width": 960})
tracker = instantiate_tracker("bytetrack", track_buffer=60)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from masktron.tracking.base_tracker import BaseTracker
from masktron.tracking.bbox_iou_tracker import BBoxIOUTracker
from masktron.tracking.byte_tracker import ByteTracker
from masktron.tracking.hungarian_tracker import (
    IOUWeightedHungarianBBoxIOUTracker,
    VanillaHungarianBBoxIOUTracker,
)

__all__ = ["SHORT_NAMES", "TRACKERS", "build_tracker_head", "instantiate_tracker"]

# TRACKER_HEADS.TRACKER_NAME -> class. Add your own tracker class here to build it by name.
TRACKERS: dict[str, type[BaseTracker]] = {
    "ByteTracker": ByteTracker,
    "BBoxIOUTracker": BBoxIOUTracker,
    "VanillaHungarianBBoxIOUTracker": VanillaHungarianBBoxIOUTracker,
    "IOUWeightedHungarianBBoxIOUTracker": IOUWeightedHungarianBBoxIOUTracker,
}
# `masktron predict --track NAME` -> TRACKER_NAME
SHORT_NAMES = {
    "bytetrack": "ByteTracker",
    "iou": "BBoxIOUTracker",
    "hungarian": "IOUWeightedHungarianBBoxIOUTracker",
}


def _tracker_class(name: str, where: str) -> type[BaseTracker]:
    key = SHORT_NAMES.get(name, name)
    if key not in TRACKERS:
        known = ", ".join(list(TRACKERS) + list(SHORT_NAMES))
        raise ValueError(f"{where}: unknown tracker {name!r}; known: {known}")
    return TRACKERS[key]


def build_tracker_head(cfg: Any) -> BaseTracker:
    """The tracker `cfg.TRACKER_HEADS.TRACKER_NAME`, built from the other `TRACKER_HEADS` keys."""
    cls = _tracker_class(cfg.TRACKER_HEADS.TRACKER_NAME, "TRACKER_HEADS.TRACKER_NAME")
    kwargs = cls.from_config(cfg)
    kwargs.pop("_target_", None)
    return cls(**kwargs)


def instantiate_tracker(spec: Any, **overrides: Any) -> BaseTracker:
    """A tracker from a config, a `{"_target_": ..., **kwargs}` dict or a name.

    Args:
        spec: a config with `TRACKER_HEADS`; a mapping whose `_target_` is a tracker class or
            its dotted path (Detectron2's `detectron2.tracking.<module>.<Class>` paths work:
            the class name decides); or a class name / short name ("bytetrack", "iou",
            "hungarian").
        overrides: constructor arguments that replace the spec's.
    """
    if isinstance(spec, str):
        return _tracker_class(spec, "tracker")(**overrides)
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        target = kwargs.pop("_target_", None)
        if target is None:
            raise ValueError("tracker spec: no _target_ key")
        if isinstance(target, type) and issubclass(target, BaseTracker):
            cls = target
        else:
            cls = _tracker_class(str(target).rsplit(".", 1)[-1], "tracker spec _target_")
        return cls(**{**kwargs, **overrides})
    if hasattr(spec, "TRACKER_HEADS"):
        tracker = build_tracker_head(spec)
        if overrides:
            kwargs = type(tracker).from_config(spec)
            kwargs.pop("_target_", None)
            tracker = type(tracker)(**{**kwargs, **overrides})
        return tracker
    raise TypeError(f"instantiate_tracker: expected a config, a dict or a name, got {type(spec)}")

"""Hand-made frames for the tracker tests: instances from boxes (and masks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from masktron.structures import Boxes, Instances

FRAME = (600, 800)  # (height, width)


def make_instances(
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float] | None = None,
    masks: np.ndarray | None = None,
    size: tuple[int, int] = FRAME,
) -> Instances:
    """Instances of one frame: XYXY boxes, scores (default 0.9), class 1, optional masks."""
    n = len(boxes)
    fields = {
        "pred_boxes": Boxes(torch.tensor(np.asarray(boxes, np.float32).reshape(n, 4))),
        "scores": torch.tensor(list(scores) if scores is not None else [0.9] * n),
        "pred_classes": torch.ones(n, dtype=torch.int64),
    }
    if masks is not None:
        fields["pred_masks"] = torch.as_tensor(masks, dtype=torch.bool)
    return Instances(size, **fields)


def box_masks(boxes: Sequence[Sequence[float]], size: tuple[int, int] = FRAME) -> np.ndarray:
    """(N, H, W) bool masks that fill each box."""
    out = np.zeros((len(boxes), *size), dtype=bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        out[k, int(y0) : int(y1), int(x0) : int(x1)] = True
    return out


def run(tracker, frames: Sequence[Instances]) -> list[list[int]]:
    """The ids of each frame's current detections (carried-over instances left out)."""
    ids = []
    for inst in frames:
        out = tracker.update(inst)
        ids.append([i for i, lost in zip(out.ID, out.lost_frame_count) if lost == 0])
    return ids

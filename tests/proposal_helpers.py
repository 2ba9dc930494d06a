"""Detectron2-format proposal files for the COCO sample, built from its ground truth."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np


def coco_gt_boxes(raw: dict) -> dict[int, np.ndarray]:
    """Every image's annotation boxes (crowd included) as (N, 4) XYXY float32, by image id."""
    boxes: dict[int, list] = {img["id"]: [] for img in raw["images"]}
    for a in raw["annotations"]:
        x, y, w, h = a["bbox"]
        boxes[a["image_id"]].append([x, y, x + w, y + h])
    return {k: np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in boxes.items()}


def make_proposals(
    raw: dict, *, seed: int = 0, jitter: float = 0.05, num_random: int = 3
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per image id: (boxes (N, 4) XYXY float32, logits (N,) float32), in no particular order.

    The boxes are the ground-truth boxes moved by up to `jitter` of their size, followed by
    `num_random` random boxes inside the image; the logits are seeded Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    sizes = {img["id"]: (img["width"], img["height"]) for img in raw["images"]}
    out = {}
    for image_id, gt in coco_gt_boxes(raw).items():
        w, h = sizes[image_id]
        wh = np.concatenate([gt[:, 2:] - gt[:, :2]] * 2, axis=1)  # (N, 4): w, h, w, h
        moved = gt + rng.uniform(-jitter, jitter, size=gt.shape) * wh
        corners = rng.uniform(0, 1, size=(num_random, 2, 2)) * np.array([w, h])  # (R, 2, xy)
        rand = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)  # (R, 4)
        boxes = np.concatenate([moved, rand]).astype(np.float32)
        out[image_id] = (boxes, rng.normal(size=len(boxes)).astype(np.float32))
    return out


def write_proposal_file(
    path: Path,
    proposals: dict[int, tuple[np.ndarray, np.ndarray]],
    *,
    legacy: bool = False,
    string_ids: bool = False,
    **extra: object,
) -> Path:
    """Pickle `proposals` as Detectron2 does (`legacy`: Detectron1's "indexes"/"scores")."""
    ids = [str(i) if string_ids else i for i in proposals]
    content = {
        "indexes" if legacy else "ids": ids,
        "boxes": [b for b, _ in proposals.values()],
        "scores" if legacy else "objectness_logits": [s for _, s in proposals.values()],
        **extra,
    }
    with open(path, "wb") as f:
        pickle.dump(content, f)
    return path


def load_raw(json_file: Path) -> dict:
    return json.loads(Path(json_file).read_text())

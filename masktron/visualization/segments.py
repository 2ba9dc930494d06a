"""Reading semantic and panoptic label maps for drawing: validation, segment lists, PNG files."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["load_seg_file", "panoptic_segments", "to_label_map"]


def to_label_map(seg: Any, image_hw: tuple[int, int], where: str) -> np.ndarray:
    """An (H, W) int64 copy of a label map given as an array or tensor of integers.

    Raises:
        ValueError: naming `where` when the shape differs from the image or values aren't ints.
    """
    if isinstance(seg, torch.Tensor):
        seg = seg.detach().cpu().numpy()
    arr = np.asarray(seg)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]  # (1, H, W) -> (H, W)
    if arr.shape != tuple(image_hw):
        raise ValueError(f"{where}: shape {arr.shape} differs from the image's {tuple(image_hw)}")
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{where}: expected integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def panoptic_segments(
    seg: np.ndarray, segments_info: list[dict] | None, metadata: Any
) -> list[tuple[int, dict]]:
    """The segments present in a panoptic id map, largest first, as (id, info) pairs.

    Args:
        seg: (H, W) int64 segment ids.
        segments_info: Detectron2's list of {"id", "isthing", "category_id", ...}; ids present in
            `seg` but not listed are void. None: ids encode `category * label_divisor +
            instance` with `metadata.label_divisor`, -1 being void; a category is a thing when
            it is among `metadata.thing_dataset_id_to_contiguous_id`'s values, or, without that
            table, when its instance number is not 0 (Panoptic-DeepLab numbers stuff 0).

    Returns:
        [(segment id, a copy of its info dict)], sorted by decreasing area.
    """
    ids, areas = np.unique(seg, return_counts=True)
    if segments_info is None:
        divisor = metadata.get("label_divisor")
        if not divisor:
            raise ValueError(
                "draw_panoptic_seg: segments_info is None, so ids are read as category * "
                "label_divisor + instance, and metadata.label_divisor must be set "
                "(Panoptic-DeepLab uses 1000)"
            )
        thing_map = metadata.get("thing_dataset_id_to_contiguous_id")
        thing_ids = set(thing_map.values()) if thing_map else None
        infos = {}
        for sid in ids.tolist():
            if sid < 0:
                continue
            cat, instance = divmod(sid, int(divisor))
            isthing = cat in thing_ids if thing_ids is not None else instance != 0
            infos[sid] = {"id": sid, "category_id": cat, "isthing": isthing}
    else:
        infos = {}
        for i, info in enumerate(segments_info):
            for key in ("id", "category_id", "isthing"):
                if key not in info:
                    raise ValueError(f"draw_panoptic_seg: segments_info[{i}] has no {key!r}")
            infos[int(info["id"])] = dict(info)
    order = np.argsort(-areas, kind="stable")
    out = []
    for sid, area in zip(ids[order].tolist(), areas[order].tolist()):
        if sid in infos and area > 0:
            info = infos[sid]
            info["area"] = float(area)
            info["category_id"] = int(info["category_id"])
            out.append((sid, info))
    return out


def load_seg_file(path: str | os.PathLike, panoptic: bool) -> np.ndarray:
    """Read a label PNG: semantic (one channel of ids) or panoptic (COCO's RGB-encoded ids,
    id = R + 256 G + 256^2 B).
    """
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB") if panoptic else img)
    except (OSError, ValueError) as e:
        raise OSError(f"cannot read the label map {os.fspath(path)!r}: {e}") from e
    if not panoptic:
        return arr.astype(np.int64)
    rgb = arr.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]

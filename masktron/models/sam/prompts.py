"""Validation of the images and prompts given to SAM, with messages that name the bad field.

Coordinates are XY pixels in the original image of size (H, W); a point or box corner may lie
anywhere in [0, W] x [0, H] (the closed image rectangle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def check_image(image: Any, name: str = "image") -> None:
    """Raise ValueError unless `image` is an (H, W, 3) uint8 numpy array with H, W > 0."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"{name} must be a numpy array (H, W, 3) uint8, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 with values 0-255, got dtype {image.dtype}")


def _array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric, got {type(value).__name__}: {e}") from e
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_inside(xy: np.ndarray, name: str, size: Sequence[int], skip: np.ndarray | None) -> None:
    """xy: (..., 2); raise if any (not skipped) coordinate lies outside [0, W] x [0, H]."""
    h, w = int(size[0]), int(size[1])
    outside = (xy[..., 0] < 0) | (xy[..., 0] > w) | (xy[..., 1] < 0) | (xy[..., 1] > h)
    if skip is not None:
        outside &= ~skip
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        x, y = xy[idx]
        where = f"{name}[{', '.join(map(str, idx))}]"
        raise ValueError(
            f"{where} = ({x:g}, {y:g}) lies outside the image (width {w}, height {h}); "
            "coordinates are XY pixels of the original image"
        )


def check_points(
    point_coords: Any, point_labels: Any, size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one prompt's points: (N, 2) XY and (N,) labels in {0, 1}.

    Returns:
        coords (N, 2) float64 and labels (N,) int64.
    """
    if point_coords is None or point_labels is None:
        raise ValueError("point_coords and point_labels must be given together")
    coords = _array(point_coords, "point_coords")
    labels = _array(point_labels, "point_labels")
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (N, 2) (XY per point), got {coords.shape}")
    if labels.shape != (coords.shape[0],):
        raise ValueError(
            f"point_labels must have shape ({coords.shape[0]},) to match point_coords, "
            f"got {labels.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"point_labels must be 1 (foreground) or 0 (background), got {labels}")
    _check_inside(coords, "point_coords", size, None)
    return coords, labels.astype(np.int64)


def _check_boxes(boxes: np.ndarray, name: str, size: Sequence[int]) -> None:
    """boxes: (K, 4) XYXY."""
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} is not XYXY with x0 <= x1, y0 <= y1")
    _check_inside(boxes.reshape(-1, 2, 2), name, size, None)  # (K, 4) -> (K, 2 corners, xy)


def check_single_box(box: Any, size: Sequence[int]) -> np.ndarray:
    """Validate one XYXY box given as (4,) or (1, 4); returns (1, 4) float64."""
    arr = _array(box, "box")
    if arr.shape not in ((4,), (1, 4)):
        raise ValueError(
            f"box must have shape (4,) (one XYXY box), got {arr.shape}; "
            "use predict_many(boxes=...) for several boxes"
        )
    arr = arr.reshape(1, 4)
    _check_boxes(arr, "box", size)
    return arr


def check_mask_input(
    mask_input: Any, mask_size: Sequence[int], batched: bool = False
) -> np.ndarray:
    """Validate low-res mask logits: (1, h, w), or (K, 1, h, w) when `batched`; float32 copy."""
    arr = _array(mask_input, "mask_input")
    h, w = int(mask_size[0]), int(mask_size[1])
    expected = (1, h, w)
    if batched:
        if arr.ndim != 4 or arr.shape[1:] != expected:
            raise ValueError(f"mask_input must have shape (K, 1, {h}, {w}), got {arr.shape}")
    elif arr.shape != expected:
        raise ValueError(
            f"mask_input must have shape (1, {h}, {w}) (low_res_logits of a previous prediction), "
            f"got {arr.shape}"
        )
    return arr.astype(np.float32)


def check_many_prompts(
    point_coords: Any,
    point_labels: Any,
    boxes: Any,
    mask_input: Any,
    size: Sequence[int],
    mask_size: Sequence[int],
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate K prompts: points (K, N, 2) with labels (K, N) in {-1, 0, 1} (-1 pads prompts
    with fewer points and is not bounds-checked), boxes (K, 4), masks (K, 1, h, w).

    Returns:
        the arrays as float64 (labels int64, masks float32), None where not given.
    """
    if (point_coords is None) != (point_labels is None):
        raise ValueError("point_coords and point_labels must be given together")
    coords = labels = box_arr = masks = None
    sizes = {}
    if point_coords is not None:
        coords = _array(point_coords, "point_coords")
        labels = _array(point_labels, "point_labels")
        if coords.ndim != 3 or coords.shape[2] != 2:
            raise ValueError(f"point_coords must have shape (K, N, 2), got {coords.shape}")
        if labels.shape != coords.shape[:2]:
            raise ValueError(f"point_labels must have shape {coords.shape[:2]}, got {labels.shape}")
        if not np.isin(labels, (-1, 0, 1)).all():
            raise ValueError("point_labels must be 1 (foreground), 0 (background) or -1 (padding)")
        _check_inside(coords, "point_coords", size, labels == -1)
        labels = labels.astype(np.int64)
        sizes["point_coords"] = coords.shape[0]
    if boxes is not None:
        box_arr = _array(boxes, "boxes")
        if box_arr.ndim != 2 or box_arr.shape[1] != 4:
            raise ValueError(f"boxes must have shape (K, 4) XYXY, got {box_arr.shape}")
        _check_boxes(box_arr, "boxes", size)
        sizes["boxes"] = box_arr.shape[0]
    if mask_input is not None:
        masks = check_mask_input(mask_input, mask_size, batched=True)
        sizes["mask_input"] = masks.shape[0]
    if not sizes:
        raise ValueError("give at least one of point_coords, boxes or mask_input")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the prompts have different counts K: {sizes}")
    return coords, labels, box_arr, masks


def check_torch_prompts(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
) -> int:
    """Check the shapes of batched torch prompts (resized frame); return their batch size B."""
    sizes = {}
    if point_coords is not None and point_labels is not None:
        if point_coords.ndim != 3 or point_coords.shape[-1] != 2:
            raise ValueError(f"point_coords must be (B, N, 2), got {tuple(point_coords.shape)}")
        if tuple(point_labels.shape) != tuple(point_coords.shape[:2]):
            raise ValueError(
                f"point_labels must be (B, N) = {tuple(point_coords.shape[:2])}, "
                f"got {tuple(point_labels.shape)}"
            )
        sizes["point_coords"] = point_coords.shape[0]
    if boxes is not None:
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (B, 4), got {tuple(boxes.shape)}")
        sizes["boxes"] = boxes.shape[0]
    if mask_input is not None:
        if mask_input.ndim != 4 or mask_input.shape[1] != 1:
            raise ValueError(f"mask_input must be (B, 1, 256, 256), got {tuple(mask_input.shape)}")
        sizes["mask_input"] = mask_input.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"prompt batch sizes differ: {sizes}")
    return next(iter(sizes.values()), 1)

"""Boxes: `BoxMode` conversions at the edges, `Boxes` (absolute XYXY) inside, and pairwise IoU."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import torch


class BoxMode(IntEnum):
    """How 4 (or 5) numbers describe a box; values match Detectron2's (datasets store them)."""

    XYXY_ABS = 0  # (x0, y0, x1, y1) in pixels
    XYWH_ABS = 1  # (x0, y0, w, h) in pixels: COCO's format
    XYXY_REL = 2  # (x0, y0, x1, y1) as fractions of the image size
    XYWH_REL = 3  # (x0, y0, w, h) as fractions of the image size
    XYWHA_ABS = 4  # (xc, yc, w, h, angle in degrees): rotated boxes

    @staticmethod
    def convert(box: Any, from_mode: BoxMode, to_mode: BoxMode) -> Any:
        """Convert one box (a list/tuple of 4) or a batch (an (N, 4) array or tensor).

        Returns the same kind of object as given. Only absolute modes convert; relative modes need
        the image size, which Detectron2 does not accept here either.
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        relative = (BoxMode.XYXY_REL, BoxMode.XYWH_REL)
        if from_mode in relative or to_mode in relative:
            raise ValueError("relative box modes need the image size; convert them by hand")
        single = isinstance(box, (list, tuple))
        if single:
            if len(box) not in (4, 5):
                raise ValueError(f"a box has 4 or 5 numbers, got {len(box)}: {box!r}")
            arr = torch.tensor([list(box)], dtype=torch.float64)
        elif isinstance(box, np.ndarray):
            arr = torch.from_numpy(np.asarray(box)).clone()
        else:
            arr = box.clone()
        if arr.ndim != 2 or arr.shape[-1] not in (4, 5):
            raise ValueError(f"boxes must be (N, 4) or (N, 5), got shape {tuple(arr.shape)}")
        if from_mode == BoxMode.XYWHA_ABS or to_mode == BoxMode.XYWHA_ABS:
            arr = _convert_rotated(arr, from_mode, to_mode)
        elif from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
            arr[:, 2] += arr[:, 0]
            arr[:, 3] += arr[:, 1]
        else:  # XYXY_ABS -> XYWH_ABS
            arr[:, 2] -= arr[:, 0]
            arr[:, 3] -= arr[:, 1]
        if single:
            return type(box)(arr.flatten().tolist())
        if isinstance(box, np.ndarray):
            return arr.numpy().astype(box.dtype, copy=False)
        return arr


def _convert_rotated(arr: torch.Tensor, from_mode: BoxMode, to_mode: BoxMode) -> torch.Tensor:
    if from_mode == BoxMode.XYWHA_ABS and to_mode == BoxMode.XYXY_ABS:
        # The axis-aligned box enclosing the rotated one.
        w, h, a = arr[:, 2], arr[:, 3], arr[:, 4] * np.pi / 180.0
        c, s = torch.abs(torch.cos(a)), torch.abs(torch.sin(a))
        new_w, new_h = c * w + s * h, c * h + s * w
        x0, y0 = arr[:, 0] - new_w / 2.0, arr[:, 1] - new_h / 2.0
        return torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1)
    if from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWHA_ABS:
        w, h = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
        xc, yc = arr[:, 0] + w / 2.0, arr[:, 1] + h / 2.0
        return torch.stack([xc, yc, w, h, torch.zeros_like(w)], dim=1)
    raise ValueError(f"conversion from {from_mode.name} to {to_mode.name} is not supported")


class Boxes:
    """N axis-aligned boxes as an (N, 4) float tensor of absolute (x0, y0, x1, y1)."""

    def __init__(self, tensor: torch.Tensor | np.ndarray | Sequence):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(np.asarray(tensor, dtype=np.float32))
        elif not tensor.is_floating_point():
            tensor = tensor.float()
        if tensor.numel() == 0:
            tensor = tensor.reshape(0, 4)  # (0,) or (0, k) -> (0, 4)
        if tensor.ndim != 2 or tensor.shape[-1] != 4:
            raise ValueError(f"Boxes needs an (N, 4) tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def clone(self) -> Boxes:
        return Boxes(self.tensor.clone())

    def to(self, device: torch.device | str) -> Boxes:
        return Boxes(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """(N,) areas; negative widths or heights give 0."""
        box = self.tensor
        return (box[:, 2] - box[:, 0]).clamp(min=0) * (box[:, 3] - box[:, 1]).clamp(min=0)

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place to an image of `box_size` = (height, width): x in [0, w], y in [0, h]."""
        if not torch.isfinite(self.tensor).all():
            raise FloatingPointError("Boxes.clip: the boxes hold infinite or NaN values")
        h, w = box_size
        x0 = self.tensor[:, 0].clamp(min=0, max=w)
        y0 = self.tensor[:, 1].clamp(min=0, max=h)
        x1 = self.tensor[:, 2].clamp(min=0, max=w)
        y1 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x0, y0, x1, y1), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """(N,) bool: boxes whose width and height both exceed `threshold`."""
        box = self.tensor
        return (box[:, 2] - box[:, 0] > threshold) & (box[:, 3] - box[:, 1] > threshold)

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """(N,) bool: boxes inside an image of (height, width), allowing `boundary_threshold` px."""
        h, w = box_size
        t = boundary_threshold
        b = self.tensor
        return (b[:, 0] >= -t) & (b[:, 1] >= -t) & (b[:, 2] < w + t) & (b[:, 3] < h + t)

    def get_centers(self) -> torch.Tensor:
        """(N, 2) box centres (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale in place: x by `scale_x`, y by `scale_y`."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def __getitem__(self, item: Any) -> Boxes:
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        selected = self.tensor[item]
        if selected.dim() != 2:
            raise IndexError(f"indexing Boxes with {item!r} did not give a 2-D tensor")
        return Boxes(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return f"Boxes({self.tensor})"

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes]) -> Boxes:
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 4))
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection areas."""
    a, b = boxes1.tensor, boxes2.tensor
    wh = torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])  # (N, M, 2)
    wh.clamp_(min=0)
    return wh.prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over union; 0 where both boxes are empty."""
    area1, area2 = boxes1.area(), boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(
        inter > 0,
        inter / (area1[:, None] + area2 - inter),
        torch.zeros(1, dtype=inter.dtype, device=inter.device),
    )


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over the area of each box of `boxes2`."""
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(
        inter > 0, inter / area2, torch.zeros(1, dtype=inter.dtype, device=inter.device)
    )

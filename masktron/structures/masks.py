"""Instance masks: `BitMasks` (dense (N, H, W) bool) and `PolygonMasks` (COCO polygons)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from torchvision.ops import roi_align

from masktron.structures.boxes import Boxes


def polygons_to_bitmask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise the polygons of one instance (each a flat [x0, y0, x1, y1, ...]) to (H, W) bool.

    Pixel (i, j) is inside when its centre (j + 0.5, i + 0.5) is, as in COCO's own rasteriser.
    """
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_util.frPyObjects(
        [np.asarray(p, dtype=np.float64).tolist() for p in polygons], height, width
    )
    rle = mask_util.merge(rles)
    return mask_util.decode(rle).astype(bool)


def rasterize_polygons_within_box(
    polygons: Sequence[np.ndarray], box: np.ndarray, mask_size: int
) -> torch.Tensor:
    """Rasterise one instance's polygons in the frame of `box` (XYXY) to a (M, M) bool mask.

    This is how mask-head targets are made from polygons: the box is stretched to M x M.
    """
    w, h = box[2] - box[0], box[3] - box[1]
    polygons = copy.deepcopy(list(polygons))
    ratio_h = mask_size / max(h, 0.1)
    ratio_w = mask_size / max(w, 0.1)
    for p in polygons:
        p[0::2] = (p[0::2] - box[0]) * ratio_w
        p[1::2] = (p[1::2] - box[1]) * ratio_h
    return torch.from_numpy(polygons_to_bitmask(polygons, mask_size, mask_size))


class BitMasks:
    """N dense masks of one image: an (N, H, W) bool tensor."""

    def __init__(self, tensor: torch.Tensor | np.ndarray):
        if isinstance(tensor, np.ndarray):
            tensor = torch.from_numpy(tensor)
        tensor = tensor.to(torch.bool)
        if tensor.ndim != 3:
            raise ValueError(f"BitMasks needs an (N, H, W) tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor
        self.image_size = tuple(tensor.shape[1:])

    def to(self, *args: Any, **kwargs: Any) -> BitMasks:
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item: Any) -> BitMasks:
        if isinstance(item, int):
            return BitMasks(self.tensor[item].unsqueeze(0))  # (H, W) -> (1, H, W)
        return BitMasks(self.tensor[item])

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return f"BitMasks(num_instances={len(self)}, image_size={self.image_size})"

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: masks with at least one pixel."""
        return self.tensor.flatten(1).any(dim=1)

    def area(self) -> torch.Tensor:
        return self.tensor.flatten(1).sum(dim=1)

    def get_bounding_boxes(self) -> Boxes:
        """Tight XYXY boxes around each mask (pixel edges); empty masks give all zeros."""
        boxes = torch.zeros(len(self), 4, dtype=torch.float32)
        x_any = self.tensor.any(dim=1)  # (N, W)
        y_any = self.tensor.any(dim=2)  # (N, H)
        for i in range(len(self)):
            x = torch.where(x_any[i])[0]
            y = torch.where(y_any[i])[0]
            if len(x) and len(y):
                boxes[i] = torch.tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
        return Boxes(boxes)

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Crop each mask to its (N, 4) XYXY box and resample to (N, M, M) bool (mask targets)."""
        if len(boxes) != len(self):
            raise ValueError(f"{len(boxes)} boxes for {len(self)} masks")
        device = self.tensor.device
        index = torch.arange(len(boxes), device=device, dtype=boxes.dtype)[:, None]
        rois = torch.cat([index, boxes.to(device)], dim=1)  # (N, 5): batch index + box
        masks = self.tensor.to(torch.float32)[:, None]  # (N, H, W) -> (N, 1, H, W)
        out = roi_align(masks, rois, (mask_size, mask_size), 1.0, sampling_ratio=0, aligned=True)
        return out.squeeze(1) >= 0.5

    @staticmethod
    def from_polygon_masks(
        polygon_masks: PolygonMasks | Sequence[Sequence[np.ndarray]], height: int, width: int
    ) -> BitMasks:
        """Rasterise a `PolygonMasks` or a plain list of per-instance polygon lists."""
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [polygons_to_bitmask(p, height, width) for p in polygon_masks]
        if not masks:
            return BitMasks(torch.zeros(0, height, width, dtype=torch.bool))
        return BitMasks(torch.from_numpy(np.stack(masks)))

    @staticmethod
    def cat(bitmasks_list: Sequence[BitMasks]) -> BitMasks:
        return BitMasks(torch.cat([m.tensor for m in bitmasks_list], dim=0))


class PolygonMasks:
    """N instances, each a list of polygons (flat float64 arrays [x0, y0, x1, y1, ...], pixels)."""

    def __init__(self, polygons: Sequence[Sequence[Any]]):
        if not isinstance(polygons, (list, tuple)):
            raise ValueError(
                f"PolygonMasks needs a list of lists of polygons, got {type(polygons)}"
            )

        def process_polygon(poly: Any) -> np.ndarray:
            arr = np.asarray(
                poly.cpu() if isinstance(poly, torch.Tensor) else poly, dtype=np.float64
            )
            if arr.ndim != 1 or len(arr) % 2 != 0 or len(arr) < 6:
                raise ValueError(
                    f"a polygon needs 3+ (x, y) points in a flat list, got {arr.size} numbers"
                )
            return arr

        self.polygons: list[list[np.ndarray]] = []
        for instance in polygons:
            if not isinstance(instance, (list, tuple)):
                raise ValueError("each instance of PolygonMasks must be a list of polygons")
            self.polygons.append([process_polygon(p) for p in instance])

    def to(self, *args: Any, **kwargs: Any) -> PolygonMasks:
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for i, instance in enumerate(self.polygons):
            if not instance:
                continue
            coords = np.concatenate(instance).reshape(-1, 2)  # (K*P,) -> (points, 2)
            boxes[i] = torch.tensor([*coords.min(axis=0), *coords.max(axis=0)], dtype=torch.float32)
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        return torch.tensor([len(p) > 0 for p in self.polygons], dtype=torch.bool)

    def __getitem__(self, item: Any) -> PolygonMasks:
        if isinstance(item, int):
            selected = [self.polygons[item]]
        elif isinstance(item, slice):
            selected = self.polygons[item]
        else:
            if isinstance(item, torch.Tensor):
                if item.dtype == torch.bool:
                    item = item.nonzero().squeeze(1)
                item = item.cpu().tolist()
            elif isinstance(item, np.ndarray) and item.dtype == bool:
                item = np.nonzero(item)[0].tolist()
            selected = [self.polygons[i] for i in item]
        return PolygonMasks(selected)

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        return iter(self.polygons)

    def __len__(self) -> int:
        return len(self.polygons)

    def __repr__(self) -> str:
        return f"PolygonMasks(num_instances={len(self)})"

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Rasterise each instance inside its (N, 4) XYXY box at (N, M, M) bool (mask targets)."""
        if len(boxes) != len(self):
            raise ValueError(f"{len(boxes)} boxes for {len(self)} masks")
        if len(boxes) == 0:
            return torch.empty(0, mask_size, mask_size, dtype=torch.bool, device=boxes.device)
        box_np = boxes.detach().cpu().numpy()
        masks = [
            rasterize_polygons_within_box(poly, box, mask_size)
            for poly, box in zip(self.polygons, box_np)
        ]
        return torch.stack(masks, dim=0).to(device=boxes.device)

    def area(self) -> torch.Tensor:
        """(N,) polygon areas by the shoelace formula (overlaps between polygons counted twice)."""
        areas = []
        for instance in self.polygons:
            total = 0.0
            for p in instance:
                x, y = p[0::2], p[1::2]
                total += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            areas.append(total)
        return torch.tensor(areas)

    @staticmethod
    def cat(polymasks_list: Sequence[PolygonMasks]) -> PolygonMasks:
        out = PolygonMasks([])
        out.polygons = [p for masks in polymasks_list for p in masks.polygons]
        return out

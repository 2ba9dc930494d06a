"""Anchor boxes: a few reference boxes of fixed sizes and aspect ratios at every feature cell."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from masktron.config.configurable import configurable
from masktron.structures import Boxes


def _broadcast_per_level(params: Sequence[Any], num_levels: int, name: str) -> list:
    """One list of values per level: a flat list of numbers (`[32, 64]`), or a list holding
    one list, applies to every level; otherwise there must be one list per level."""
    if len(params) > 0 and not isinstance(params[0], Sequence):
        return [list(params)] * num_levels
    if len(params) == 1:
        return [list(params[0])] * num_levels
    if len(params) != num_levels:
        raise ValueError(f"anchor {name}: {len(params)} lists for {num_levels} feature levels")
    return [list(p) for p in params]


def generate_cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """Anchors centred at (0, 0): for each size, then each ratio (h / w), a box of area size^2.

    Returns:
        (len(sizes) * len(aspect_ratios), 4) XYXY, size-major.
    """
    anchors = []
    for size in sizes:
        area = size**2.0
        for ratio in aspect_ratios:
            w = math.sqrt(area / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors)


class _BufferList(nn.Module):
    """Tensors that move with the module (`.to(device)`) but are not saved in checkpoints."""

    def __init__(self, buffers: list[torch.Tensor]):
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer, persistent=False)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._buffers.values())


class DefaultAnchorGenerator(nn.Module):
    """Anchors for each level of a feature pyramid (or a single map).

    Also built as Detectron2's `DefaultAnchorGenerator(cfg, input_shapes)` (`@configurable`).

    Args:
        sizes: per level, the anchor sizes in input pixels (sqrt of area); a flat list of
            numbers, or a list holding one list, is used at every level.
        aspect_ratios: per level, the ratios height / width (broadcast the same way).
        strides: input pixels per cell at each level.
        offset: anchor centres at `(i + offset) * stride`; 0.5 (cell centres) is Detectron2's
            default here, while its configs (`MODEL.ANCHOR_GENERATOR.OFFSET`) use 0.0.
    """

    box_dim = 4

    @configurable
    def __init__(
        self,
        *,
        sizes: Sequence[Any],
        aspect_ratios: Sequence[Any],
        strides: Sequence[int],
        offset: float = 0.5,
    ):
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"anchor offset must be in [0, 1), got {offset}")
        self.strides = list(strides)
        self.num_features = len(self.strides)
        sizes = _broadcast_per_level(sizes, self.num_features, "sizes")
        ratios = _broadcast_per_level(aspect_ratios, self.num_features, "aspect ratios")
        self.cell_anchors = _BufferList(
            [generate_cell_anchors(s, r).float() for s, r in zip(sizes, ratios)]
        )
        self.offset = offset

    @classmethod
    def from_config(cls, cfg: Any, input_shape: Any) -> dict[str, Any]:
        """Keyword arguments from `MODEL.ANCHOR_GENERATOR` and the feature maps' ShapeSpecs."""
        from masktron.models.build import anchor_generator_kwargs

        return anchor_generator_kwargs(cfg, input_shape)

    @property
    def num_cell_anchors(self) -> list[int]:
        """Anchors per cell at each level."""
        return [len(cell) for cell in self.cell_anchors]

    num_anchors = num_cell_anchors

    def _grid_anchors(self, grid_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        anchors = []
        for (h, w), stride, base in zip(grid_sizes, self.strides, self.cell_anchors):
            device = base.device
            shifts_x = torch.arange(
                self.offset * stride, w * stride, step=stride, dtype=torch.float32, device=device
            )
            shifts_y = torch.arange(
                self.offset * stride, h * stride, step=stride, dtype=torch.float32, device=device
            )
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)  # (H, W) -> (H*W,)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # (H*W, 4)
            # (H*W, 1, 4) + (1, A, 4) -> (H*W*A, 4): cells row-major, anchors within a cell.
            anchors.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def forward(self, features: list[torch.Tensor]) -> list[Boxes]:
        """Anchors for feature maps (N, C, H_l, W_l) -> per level Boxes of (H_l*W_l*A_l, 4)."""
        grid_sizes = [(f.shape[-2], f.shape[-1]) for f in features]
        return [Boxes(a) for a in self._grid_anchors(grid_sizes)]

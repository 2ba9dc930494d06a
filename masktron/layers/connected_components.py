"""Connected components of binary masks in plain torch ops, and SAM 2's hole filling.

Meta's SAM 2 labels components with a CUDA extension and, when the extension is missing, skips
the post-processing that needs it (with a warning). These ops run on any device, so masktron
fills small holes everywhere, as Meta's code does on a machine with its extension built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["connected_components", "fill_holes_in_mask_scores"]


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label the 8-connected components of binary masks.

    Every foreground pixel starts with its own flat index + 1 as label; a pixel takes the
    largest label in its 3x3 neighbourhood of foreground pixels, then the label its label
    points to (pointer jumping), until nothing changes. A component ends labelled with
    1 + the largest flat index of its pixels.

    Args:
        mask: (N, 1, H, W) bool (or 0/1) masks.

    Returns:
        labels: (N, 1, H, W) int64, the component label of each foreground pixel, 0 elsewhere.
        counts: (N, 1, H, W) int64, the area of each foreground pixel's component, 0 elsewhere.
    """
    if mask.dim() != 4 or mask.size(1) != 1:
        raise ValueError(f"expected masks of shape (N, 1, H, W), got {tuple(mask.shape)}")
    n, _, h, w = mask.shape
    fg = mask.bool()
    if n == 0 or h * w == 0:
        zeros = torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
        return zeros, zeros.clone()
    labels = _propagate_labels(fg, max_steps=None)
    flat_labels = labels.view(n, h * w)
    areas = torch.zeros(n, h * w + 1, dtype=torch.int64, device=mask.device)
    areas.scatter_add_(1, flat_labels, torch.ones_like(flat_labels))
    areas[:, 0] = 0  # the background is no component
    counts = areas.gather(1, flat_labels).view(n, 1, h, w)
    return labels, counts


def _propagate_labels(fg: torch.Tensor, max_steps: int | None) -> torch.Tensor:
    """Labels of `connected_components` after `max_steps` rounds (None: until stable).

    Each round makes a label at least the largest over the pixel's 3x3 foreground
    neighbourhood, so after k rounds every component of at most k + 1 pixels is labelled
    completely; labels never leave their component.
    """
    n, _, h, w = fg.shape
    index = torch.arange(1, h * w + 1, device=fg.device, dtype=torch.int64).view(1, 1, h, w)
    labels = torch.where(fg, index, 0)  # (N, 1, H, W); labels run over 1..H*W per image
    step = 0
    while max_steps is None or step < max_steps:
        step += 1
        # max-pool runs on floating point: float64 holds the labels exactly
        grown = F.max_pool2d(labels.double(), 3, stride=1, padding=1).long()
        grown = torch.where(fg, grown, 0)
        flat = torch.cat([grown.new_zeros(n, 1), grown.view(n, h * w)], dim=1)  # (N, 1+HW)
        jumped = flat.gather(1, grown.view(n, h * w)).view(n, 1, h, w)  # label of the label
        updated = torch.maximum(grown, jumped)
        if torch.equal(updated, labels):
            break
        labels = updated
    return labels


def _complete_components(fg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) bool: foreground pixels whose whole component carries their label.

    A label group none of whose pixels touches a foreground pixel of another label is a whole
    component (labels never cross components).
    """
    n, _, h, w = fg.shape
    far = h * w + 1
    high = F.max_pool2d(labels.double(), 3, stride=1, padding=1).long()
    low = -F.max_pool2d(-torch.where(fg, labels, far).double(), 3, stride=1, padding=1)
    border = fg & ((high != labels) | (low.long() != labels))  # a neighbour labelled otherwise
    flat_labels = labels.view(n, h * w)
    open_groups = torch.zeros(n, h * w + 1, dtype=torch.int64, device=fg.device)
    open_groups.scatter_add_(1, flat_labels, border.view(n, h * w).long())
    return fg & (open_groups.gather(1, flat_labels).view(n, 1, h, w) == 0)


def fill_holes_in_mask_scores(mask: torch.Tensor, max_area: int) -> torch.Tensor:
    """Turn small holes of mask scores into foreground, as SAM 2's video post-processing.

    A hole is an 8-connected region of scores <= 0 of at most `max_area` pixels; its scores
    become 0.1 (just above the threshold).

    Args:
        mask: (N, 1, H, W) float mask logits.
        max_area: largest hole area filled, in pixels of `mask`; must be positive.

    Returns:
        (N, 1, H, W) float, `mask` with holes filled.
    """
    if max_area <= 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    # components of at most `max_area` pixels are complete after `max_area` rounds; larger
    # ones need not be labelled to the end to be known as larger
    fg = mask <= 0
    n, _, h, w = mask.shape
    labels = _propagate_labels(fg, max_steps=max_area)
    flat_labels = labels.view(n, h * w)
    areas = torch.zeros(n, h * w + 1, dtype=torch.int64, device=mask.device)
    areas.scatter_add_(1, flat_labels, torch.ones_like(flat_labels))
    area = areas.gather(1, flat_labels).view(n, 1, h, w)
    is_hole = _complete_components(fg, labels) & (area <= max_area)
    return torch.where(is_hole, torch.tensor(0.1, dtype=mask.dtype, device=mask.device), mask)

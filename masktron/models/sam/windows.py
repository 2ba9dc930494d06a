"""Moving a token grid into and out of attention windows with one copy, padding included.

The plain form of Meta's SAM pads the grid (one copy) and then reorders it into windows (a second
copy), and reorders back and then crops the padding (two more). The functions here copy
each tensor once: the grid is split into at most four rectangles (full windows, the partial last
window row, the partial last window column, the corner), each copied between its strided views
in the grid and in the windows buffer, and only the padding of the buffer is filled.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def _pieces(size: int, window: int) -> list[tuple[slice, slice, int]]:
    """Along one axis: (grid slice, window-index slice, positions used inside each window)."""
    full, rest = divmod(size, window)
    out = []
    if full:
        out.append((slice(0, full * window), slice(0, full), window))
    if rest:
        out.append((slice(full * window, size), slice(full, full + 1), rest))
    return out


def _window_view(windows: torch.Tensor, b: int, nh: int, nw: int, window: int) -> torch.Tensor:
    """(B*nh*nw, win, win, C) -> view (B, nh, win, nw, win, C) laid over the padded grid."""
    c = windows.shape[-1]
    # (B*nh*nw, win, win, C) -> (B, nh, nw, win, win, C) -> (B, nh, win, nw, win, C)
    return windows.view(b, nh, nw, window, window, c).permute(0, 1, 3, 2, 4, 5)


def _rectangles(
    grid: torch.Tensor, view: torch.Tensor, window: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (grid part, windows part) view pairs that cover the grid's positions (at most four).

    Args:
        grid: (B, H, W, C).
        view: `_window_view` of the windows buffer, (B, nh, win, nw, win, C).
    """
    b, h, w, c = grid.shape
    for gy, by, ty in _pieces(h, window):
        for gx, bx, tx in _pieces(w, window):
            part = grid[:, gy, gx].view(b, by.stop - by.start, ty, bx.stop - bx.start, tx, c)
            yield part, view[:, by, :ty, bx, :tx]


def grid_to_windows(
    grid: torch.Tensor, window: int, pad: torch.Tensor | None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Windows of a grid, the bottom/right padding filled with `pad` (zeros when None).

    Equals zero-padding the grid and reordering it into windows when `pad` is None; with
    `pad` = b, it equals doing so to the input of a linear layer with bias b, after the layer.

    Args:
        grid: (B, H, W, C).
        window: window side.
        pad: (C,) value of the padding positions, or None for zeros.
        out: a contiguous (B * nh * nw, win, win, C) buffer to write into, or None.

    Returns:
        (B * nh * nw, win, win, C) contiguous (`out` when given), nh = ceil(H / win),
        nw = ceil(W / win).
    """
    b, h, w, c = grid.shape
    nh, nw = -(-h // window), -(-w // window)
    shape = (b * nh * nw, window, window, c)
    if out is not None and (tuple(out.shape) != shape or not out.is_contiguous()):
        raise ValueError(f"out must be a contiguous {shape} tensor, got {tuple(out.shape)}")
    windows = grid.new_empty(shape) if out is None else out
    view = _window_view(windows, b, nh, nw, window)  # (B, nh, win, nw, win, C)
    fill = 0.0 if pad is None else pad.to(grid.dtype)
    if h % window:
        view[:, -1, h % window :] = fill  # padding rows of the last window row
    if w % window:
        view[:, :, :, -1, w % window :] = fill  # padding columns of the last window column
    for part, cell in _rectangles(grid, view, window):
        cell.copy_(part)
    return windows


def windows_to_grid(windows: torch.Tensor, window: int, hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of `grid_to_windows`: (B*nh*nw, win, win, C) -> (B, H, W, C), padding dropped.

    Equals reordering the windows back into the padded grid and cropping it, in one copy.
    """
    h, w = hw
    nh, nw = -(-h // window), -(-w // window)
    c = windows.shape[-1]
    b = windows.shape[0] // (nh * nw)
    view = _window_view(windows, b, nh, nw, window)  # (B, nh, win, nw, win, C)
    grid = windows.new_empty(b, h, w, c)
    for part, cell in _rectangles(grid, view, window):
        part.copy_(cell)
    return grid

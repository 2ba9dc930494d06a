"""The plain window partition of Meta's SAM and SAM 2 (zero-pad, reorder; reorder, crop), the
reference the encoders' one-copy window moves (`masktron.models.sam.windows`) are tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split a grid into non-overlapping windows, zero-padding the bottom/right edges.

    Args:
        x: (B, H, W, C).
        window: window side.

    Returns:
        (B * nWh * nWw, window, window, C) windows and the padded (Hp, Wp).
    """
    b, h, w, c = x.shape
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    # (B, Hp, Wp, C) -> (B, nWh, win, nWw, win, C) -> (B, nWh, nWw, win, win, C)
    #   -> (B*nW, win, win, C)
    x = x.view(b, hp // window, window, wp // window, window, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B*nW, win, win, C) -> (B, H, W, C), padding removed."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    # (B*nW, win, win, C) -> (B, nWh, nWw, win, win, C) -> (B, nWh, win, nWw, win, C)
    #   -> (B, Hp, Wp, C)
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()
    return x

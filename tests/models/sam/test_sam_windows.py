"""The encoder's one-copy window moves and windowed attention equal the pad-partition-crop form."""

from __future__ import annotations

import pytest
import torch
from sam_window_reference import window_partition, window_unpartition

from masktron.models.sam import image_encoder
from masktron.models.sam.image_encoder import Attention
from masktron.models.sam.windows import grid_to_windows, windows_to_grid


@pytest.mark.parametrize("hw", [(9, 11), (8, 12), (3, 2)])
def test_window_moves_equal_partition_and_unpartition(hw):
    x = torch.randn(2, *hw, 5)
    ref, padded = window_partition(x, 4)
    windows = grid_to_windows(x, 4, None)
    assert torch.equal(windows, ref)
    assert torch.equal(windows_to_grid(windows, 4, hw), window_unpartition(ref, 4, padded, hw))
    # A padding value fills exactly the positions that padding adds.
    pad = torch.arange(5.0) + 1
    filled = grid_to_windows(x, 4, pad)
    is_pad = window_partition(torch.ones(2, *hw, 1), 4)[0] == 0  # (B*nW, 4, 4, 1)
    assert torch.equal(filled, torch.where(is_pad, pad, ref))


@pytest.mark.parametrize("blocked", [False, True])
def test_windowed_and_global_attention_equal_plain_forms(monkeypatch, blocked):
    torch.manual_seed(0)
    attn = Attention(dim=16, num_heads=2, use_rel_pos=True, input_size=(4, 4)).eval()
    with torch.no_grad():
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
        x = torch.randn(2, 7, 10, 16)
        # Meta's form: zero-pad, partition, attend in each window, merge, crop.
        windows, padded = window_partition(x, 4)
        qkv = attn.qkv(windows)  # (B*nW, 4, 4, 3C)
        ref = window_unpartition(attn.proj(attn._attend(qkv)), 4, padded, (7, 10))
        if blocked:  # query rows in blocks of one mask row (the path of big global attention)
            monkeypatch.setattr(image_encoder, "_MAX_MASK_BYTES", 16 * 4 * 2 * 2)
        torch.testing.assert_close(attn.forward_windows(x, 4), ref, rtol=1e-6, atol=1e-6)
        # Global attention over the whole grid, blocked or not, against one unmasked-size call.
        grid = torch.randn(1, 4, 4, 16)
        monkeypatch.setattr(image_encoder, "_MAX_MASK_BYTES", 2**30)
        whole = attn(grid)
        if blocked:
            monkeypatch.setattr(image_encoder, "_MAX_MASK_BYTES", 3 * 16 * 2 * 4)
        torch.testing.assert_close(attn(grid), whole, rtol=1e-6, atol=1e-6)

"""SAM 2 building blocks on small hand-checkable inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from sam_window_reference import window_partition, window_unpartition

from masktron.models.sam2.hiera import Hiera, MultiScaleBlock, _pool_nhwc
from masktron.models.sam2.image_encoder import PositionEmbeddingSine, get_1d_sine_pe
from masktron.models.sam2.memory_attention import (
    RoPEAttention,
    apply_rope,
    axial_rope_angles,
    rotate_pairs,
)
from masktron.models.sam2.memory_bank import (
    memory_frame_indices,
    object_pointer_sources,
    select_closest_cond_frames,
)


def test_rope_is_a_complex_rotation_of_channel_pairs():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 12, 8)
    angles = axial_rope_angles(8, 4, 3)  # a 3x4 grid, head width 8
    assert angles.shape == (12, 4)
    # token 5 is (x=1, y=1): its x angles are 1 * freqs, y angles 1 * freqs
    assert torch.allclose(angles[5, :2], angles[5, 2:])
    ours = apply_rope(x, angles.cos(), angles.sin())
    ref = torch.view_as_real(torch.view_as_complex(x.reshape(2, 1, 12, 4, 2)) * torch.polar(
        torch.ones_like(angles), angles
    )).flatten(3)  # fmt: skip
    torch.testing.assert_close(ours, ref)
    # norms of each pair are kept, so the attention scores only see relative positions
    torch.testing.assert_close(ours.norm(dim=-1), x.norm(dim=-1))


def test_rope_attention_repeats_grid_rotations_over_memory_frames_and_skips_pointers():
    torch.manual_seed(0)
    attn = RoPEAttention(embedding_dim=16, num_heads=1, kv_in_dim=8, rope_k_repeat=True,
                         feat_sizes=(4, 4))  # fmt: skip
    q = torch.randn(1, 16, 16)
    k = torch.randn(1, 16 * 2 + 3, 8)  # two memory frames and three pointer tokens
    out = attn(q, k, k, num_k_exclude_rope=3)
    assert out.shape == (1, 16, 16) and torch.isfinite(out).all()
    # permuting the pointer tokens does not change anything (they carry no position)
    perm = torch.cat([k[:, :32], k[:, 32:].flip(1)], dim=1)
    torch.testing.assert_close(attn(q, perm, perm, num_k_exclude_rope=3), out)
    # the keys rotated in place next to the pointer keys equal rotation + concatenation
    with torch.no_grad():
        freqs = attn._rope(16, q.device)
        qh = rotate_pairs(attn._split_heads(attn.q_proj(q)), freqs)
        kh = attn._split_heads(attn.k_proj(k))
        kh = torch.cat([rotate_pairs(kh[:, :, :32], freqs), kh[:, :, 32:]], dim=2)
        ref = F.scaled_dot_product_attention(qh, kh, attn._split_heads(attn.v_proj(k)))
        ref = attn.out_proj(ref.transpose(1, 2).reshape(1, 16, 16))
        assert torch.equal(attn(q, k, k, num_k_exclude_rope=3), ref)


def test_sine_codes_of_a_grid_and_of_scalars():
    pe = PositionEmbeddingSine(num_pos_feats=4)
    codes = pe(torch.zeros(2, 3, 2, 5))
    assert codes.shape == (2, 4, 2, 5)
    # channels: [sin y, cos y, sin x, cos x] at the lowest frequency, positions normalised to 2pi
    y = torch.tensor([1.0, 2.0]) / (2 + 1e-6) * 2 * math.pi
    torch.testing.assert_close(codes[0, 0, :, 0], y.sin())
    torch.testing.assert_close(codes[0, 1, :, 0], y.cos())
    one_d = get_1d_sine_pe(torch.tensor([0.0, 0.5]), dim=4)
    torch.testing.assert_close(one_d[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(one_d[1, 0], torch.tensor(0.5).sin())


def test_hiera_stages_pool_queries_and_widen():
    torch.manual_seed(0)
    trunk = Hiera(embed_dim=8, num_heads=1, stages=(1, 2, 2, 1), global_att_blocks=(4,),
                  window_spec=(4, 2, 3, 2), window_pos_embed_bkg_spatial_size=(3, 3))  # fmt: skip
    windows = [b.window_size for b in trunk.blocks]
    assert windows == [4, 4, 2, 2, 0, 3]  # a stage's first block keeps the previous windows
    assert [b.attn.q_stride for b in trunk.blocks] == [None, 2, None, 2, None, 2]
    outs = trunk(torch.randn(1, 3, 80, 80))  # 20x20 tokens: the last block pads 5x5 to 6x6
    assert [tuple(o.shape) for o in outs] == [(1, 8, 20, 20), (1, 16, 10, 10), (1, 32, 5, 5),
                                              (1, 64, 2, 2)]  # fmt: skip
    assert trunk.channel_list == [64, 32, 16, 8]


def _block_on_padded_windows(block: MultiScaleBlock, x: torch.Tensor) -> torch.Tensor:
    """The windowed block written plainly: zero-pad the normalised map, cut windows, attend
    (qkv and projection on every window position), merge, crop, add the residual, MLP."""
    shortcut, y = x, block.norm1(x)
    if block.proj is not None:
        shortcut = block.proj(y)
        if block.q_stride is not None:
            shortcut = _pool_nhwc(shortcut, block.q_stride)
    windows, _ = window_partition(y, block.window_size)
    out = block.attn(windows)  # (B*nW, win', win', dim_out)
    win = out.shape[1]
    h, w = shortcut.shape[1:3]
    padded = (-(-h // win) * win, -(-w // win) * win)
    y = window_unpartition(out, win, padded, (h, w)) + shortcut
    return y + block.mlp(block.norm2(y))


def test_hiera_windowed_blocks_equal_attention_on_zero_padded_windows():
    # the blocks project only the real tokens and pad qkv windows with the bias: bit-identical
    torch.manual_seed(0)
    cases = [(8, 8, 4, None, (6, 6)), (8, 16, 4, 2, (8, 8)), (8, 8, 3, None, (7, 5)),
             (8, 16, 6, 2, (10, 10))]  # fmt: skip
    for dim, dim_out, window, q_stride, (h, w) in cases:
        block = MultiScaleBlock(dim=dim, dim_out=dim_out, num_heads=2, q_stride=q_stride,
                                window_size=window).eval()  # fmt: skip
        for p in block.parameters():  # non-zero biases, so the padding value matters
            torch.nn.init.normal_(p)
        x = torch.randn(2, h, w, dim)
        with torch.no_grad():
            assert torch.equal(block(x), _block_on_padded_windows(block, x)), (window, h, w)


def test_memory_bank_selection():
    cond = {0: "a", 10: "b", 20: "c", 30: "d"}
    selected, unselected = select_closest_cond_frames(12, cond, 2)
    assert selected == {10: "b", 20: "c"} and unselected == {0: "a", 30: "d"}
    assert select_closest_cond_frames(12, cond, -1) == (cond, {})
    assert memory_frame_indices(10, 4, 1, False) == [(1, 7), (2, 8), (3, 9)]
    assert memory_frame_indices(10, 4, 1, True) == [(1, 13), (2, 12), (3, 11)]
    assert memory_frame_indices(10, 4, 3, False) == [(1, 3), (2, 6), (3, 9)]
    ptr = {t: {"obj_ptr": t} for t in range(8)}
    pairs = object_pointer_sources(
        5, {0: ptr[0], 7: ptr[7]}, {}, {4: ptr[4], 3: ptr[3]}, max_ptrs=4, num_frames=8,
        track_in_reverse=False, only_past=True, signed=True,
    )  # fmt: skip
    assert pairs == [(5, 0), (1, 4), (2, 3)]

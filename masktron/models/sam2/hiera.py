"""Hiera, SAM 2's hierarchical image trunk (Ryali et al., https://arxiv.org/abs/2306.00989).

A 7x7 stride-4 patch embedding feeds four stages of transformer blocks. The first block of stages
2-4 halves the grid with a 2x2 max-pool of the attention queries (and of the residual branch) and
doubles channels and heads. Blocks attend inside square windows, except a few global ones. The
position embedding is a coarse background table interpolated to the grid plus a window-sized
table tiled over it ("window position embedding", Bolya et al., https://arxiv.org/abs/2311.05613).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.common import MLP
from masktron.models.sam.windows import grid_to_windows, windows_to_grid


def _pool_nhwc(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool with kernel = stride (floor mode) of a channels-last map.

    (B, H, W, C) -> (B, H // s, W // s, C). Written as maxima over reshapes, which equal
    `max_pool2d` exactly and, unlike it on CPU, compute no argmax indices. SAM 2's stride 2
    takes two elementwise maxima of half-size views: 3-4x faster on CPU than a reduction over
    the window axes (`amax`), which stays for other strides.
    """
    b, h, w, c = x.shape
    h2, w2 = h // stride, w // stride
    x = x[:, : h2 * stride, : w2 * stride]
    if stride != 2:
        # (B, H, W, C) -> (B, H', s, W', s, C) -> max over the two s axes
        return x.reshape(b, h2, stride, w2, stride, c).amax(dim=(2, 4))
    # (B, H, W, C) -> (B, H', 2, W', 2*C): the rows of a window apart, its columns side by side
    rows = x.reshape(b, h2, 2, w2, 2 * c)
    cols = torch.maximum(rows[:, :, 0], rows[:, :, 1]).view(b, h2, w2, 2, c)
    return torch.maximum(cols[..., 0, :], cols[..., 1, :])  # (B, H', W', C)


class MultiScaleAttention(nn.Module):
    """Self-attention over a (B, H, W, C) grid whose queries may be max-pooled.

    Args:
        dim: input channels.
        dim_out: output channels (and the width of q, k, v).
        num_heads: heads; dim_out must be divisible by it.
        q_stride: pooling stride of the queries (the output grid is H/q_stride), or None.
    """

    def __init__(self, *, dim: int, dim_out: int, num_heads: int, q_stride: int | None) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim_out={dim_out}")
        self.dim = dim
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H', W', dim_out), H' = H / q_stride (or H)."""
        return self.proj(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Attention from projected tokens, before the output projection.

        Args:
            qkv: (B, H, W, 3*dim_out) output of `qkv`.

        Returns:
            (B, H', W', dim_out) heads merged, H' = H / q_stride (or H).
        """
        b, h, w, _ = qkv.shape
        heads = self.num_heads
        # (B, H, W, 3*C) -> (B, H*W, 3, heads, d) -> (3, B, heads, H*W, d)
        q, k, v = qkv.reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_stride is not None:
            # (B, heads, H*W, d) -> (B, H, W, heads*d): pool the query grid of all heads at once
            q = q.transpose(1, 2).reshape(b, h, w, -1)
            q = _pool_nhwc(q, self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, heads, -1).transpose(1, 2)  # -> (B, heads, H'*W', d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H'*W', d)
        return out.transpose(1, 2).reshape(b, h, w, -1)  # -> (B, H', W', heads*d)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block: (windowed) attention with optional query pooling, then an MLP.

    Args:
        dim: input channels.
        dim_out: output channels; when different, the residual goes through a linear projection
            (and the pooling).
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / dim_out.
        q_stride: query pooling stride, or None.
        window_size: side of the attention windows; 0 for global attention.
    """

    def __init__(
        self,
        *,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: int | None = None,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        if q_stride is not None and window_size == 0:
            raise ValueError("query pooling needs windowed attention (window_size > 0)")
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(
            dim=dim, dim_out=dim_out, num_heads=num_heads, q_stride=q_stride
        )
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(
            input_dim=dim_out,
            hidden_dim=int(dim_out * mlp_ratio),
            output_dim=dim_out,
            num_layers=2,
            activation=nn.GELU,
        )
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H', W', dim_out)."""
        shortcut = x
        x = self.norm1(x)
        if self.proj is not None:
            shortcut = self.proj(x)
            if self.q_stride is not None:
                shortcut = _pool_nhwc(shortcut, self.q_stride)
        window = self.window_size
        if window > 0:
            # Windows of the normalised map are padded with zeros, which take part in the
            # attention as keys (as SAM 2 was trained). A zero token's qkv is the bias, so with
            # padding the projection runs first, on the H*W real tokens only, and its windows
            # are padded with the bias; without, the narrower map is cut. Either way one copy.
            # The output projection runs on the real tokens, after the windows are merged back.
            if x.shape[1] % window or x.shape[2] % window:
                qkv = grid_to_windows(self.attn.qkv(x), window, self.attn.qkv.bias)
            else:
                qkv = self.attn.qkv(grid_to_windows(x, window, None))
            out = self.attn.attend(qkv)  # (B*nW, win', win', dim_out), win' = win / q_stride
            out_window = window // self.q_stride if self.q_stride is not None else window
            out_hw = (shortcut.shape[1], shortcut.shape[2])
            x = self.attn.proj(windows_to_grid(out, out_window, out_hw))  # (B, H', W', dim_out)
        else:
            x = self.attn(x)
        # The residual sums are written in place into the fresh branch outputs (same values,
        # no new buffers).
        x = x.add_(shortcut)
        return self.mlp(self.norm2(x)).add_(x)


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: (B, 3, H, W) -> (B, H/4, W/4, C) channels-last."""

    def __init__(self, *, in_chans: int = 3, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)


class Hiera(nn.Module):
    """The Hiera trunk of SAM 2.

    Args:
        embed_dim: channels of stage 1 (96 tiny/small, 112 base+, 144 large).
        num_heads: heads of stage 1.
        stages: blocks per stage, e.g. (1, 2, 7, 2) for tiny.
        global_att_blocks: indexes of the blocks with global attention.
        window_spec: window side per stage; a stage's first block keeps the previous one's.
        window_pos_embed_bkg_spatial_size: (h, w) of the background position table.
        q_pool: number of stage transitions that pool the queries (3).
        q_stride: pooling stride at those transitions (2).
        dim_mul: channel multiplier per stage transition.
        head_mul: head multiplier per stage transition.
        mlp_ratio: MLP hidden width / channels.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        stages: Sequence[int],
        global_att_blocks: Sequence[int],
        window_spec: Sequence[int] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        q_pool: int = 3,
        q_stride: int = 2,
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError(f"stages {stages} and window_spec {window_spec} differ in length")
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        if not 0 <= q_pool < len(stages):
            raise ValueError(f"q_pool={q_pool} must be in [0, {len(stages) - 1}]")
        pool_blocks = {end + 1 for end in self.stage_ends[:-1][:q_pool]}
        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        bkg = tuple(window_pos_embed_bkg_spatial_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, bkg[0], bkg[1]))
        win0 = window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, win0, win0))

        blocks: list[MultiScaleBlock] = []
        stage = 0
        dim = embed_dim
        for i in range(sum(stages)):
            # The window size lags the stage by one block: a stage's first block still uses the
            # previous stage's windows (its queries are pooled down to the new stage's size).
            window = 0 if i in global_att_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            blocks.append(
                MultiScaleBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    q_stride=q_stride if i in pool_blocks else None,
                    window_size=window,
                )
            )
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None
        # Channels of the returned maps, lowest resolution first (the neck's order).
        self.channel_list = [blocks[i].dim_out for i in self.stage_ends[::-1]]

    def position_embedding(self, hw: tuple[int, int]) -> torch.Tensor:
        """(1, h, w, C) position embedding of an (h, w) token grid.

        Without gradients it is cached per grid size and parameter version (the bicubic
        interpolation costs as much as a small layer).
        """
        if torch.is_grad_enabled():
            return self._position_embedding(hw)
        tables = (self.pos_embed, self.pos_embed_window)
        key = (hw, *((t.device, t.dtype, t.data_ptr(), t._version) for t in tables))
        if self._pos_cache is None or self._pos_cache[0] != key:
            self._pos_cache = (key, self._position_embedding(hw))
        return self._pos_cache[1]

    def _position_embedding(self, hw: tuple[int, int]) -> torch.Tensor:
        background = F.interpolate(self.pos_embed, size=hw, mode="bicubic")  # (1, C, h, w)
        window = self.pos_embed_window
        reps = (hw[0] // window.shape[-2], hw[1] // window.shape[-1])
        pos = background + window.tile(1, 1, *reps)
        return pos.permute(0, 2, 3, 1)  # (1, C, h, w) -> (1, h, w, C)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) normalised image -> one (B, C_i, H/s_i, W/s_i) map per stage.

        Strides s_i are 4, 8, 16, 32, highest resolution first. The maps are channels-last
        views (permuted, not copied).
        """
        x = self.patch_embed(x)  # (B, H/4, W/4, C), a view of the convolution's (B, C, h, w)
        # position table first: the sum takes its (contiguous) layout, which every block reads
        x = self.position_embedding((x.shape[1], x.shape[2])) + x
        outputs = []
        ends = set(self.stage_ends)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                outputs.append(x.permute(0, 3, 1, 2))  # (B, h, w, C) -> (B, C, h, w)
        return outputs

"""SAM's image encoder: a plain ViT with windowed and global attention (ViTDet-style) and a neck.

The encoder maps a normalised, padded (B, 3, 1024, 1024) image to a (B, 256, 64, 64) embedding.
Most blocks attend inside 14x14 windows; a few (`global_attn_indexes`) attend over the whole
64x64 grid. Attention logits get decomposed relative-position terms (MViTv2,
https://arxiv.org/abs/2112.01526): one learned table per axis, added as an additive mask to
`scaled_dot_product_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.common import LayerNorm2d, MLPBlock
from masktron.models.sam.inplace import Scratch, inplace_ok, linear_into
from masktron.models.sam.windows import grid_to_windows, windows_to_grid

# Largest piece of the additive attention mask materialised at once (bytes). The mask of global
# attention is (batch * heads, 4096, 4096), 805 MB for ViT-B in float32; it is built and consumed
# a block of query rows at a time instead. Blocks are kept large: each
# `scaled_dot_product_attention` call on a CPU re-reads all the keys and values, so 2048-row
# blocks (384 MiB, ViT-B float32) ran a global attention 1.5x faster than 341-row ones (64 MiB),
# with identical results (2 threads, 2026-12-07).
_MAX_MASK_BYTES = 384 * 2**20


def relative_position_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Per-axis relative-position embeddings for every (query, key) pair.

    Args:
        q_size: number of query positions along the axis.
        k_size: number of key positions along the axis.
        rel_pos: (L, C) learned table; resized linearly when L != 2 * max(q_size, k_size) - 1.

    Returns:
        (q_size, k_size, C) float tensor: entry [i, j] embeds the offset between query i and key j.
    """
    length = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != length:
        # (L, C) -> (1, C, L) -> interpolate -> (1, C, length) -> (length, C)
        resized = F.interpolate(rel_pos.t().unsqueeze(0), size=length, mode="linear")
        rel_pos = resized.squeeze(0).t()
    # When the sizes differ, the shorter axis is stretched onto the longer one.
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * k_scale
    offsets = q_coords - k_coords + (k_size - 1) * k_scale
    return rel_pos[offsets.long()]


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative positions.

    Args:
        dim: channels C.
        num_heads: heads; C must be divisible by it.
        qkv_bias: whether the fused qkv projection has a bias.
        use_rel_pos: add the relative-position terms to the attention logits.
        input_size: (H, W) of the grid the tables are sized for.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        input_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def _rel_pos_terms(self, q: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-axis relative-position logits.

        Args:
            q: (B, heads, h*w, D) unscaled queries (any strides).

        Returns:
            (B, heads, h*w, h) and (B, heads, h*w, w): the logit of query (qy, qx) and key
            (ky, kx) is `rel_h[b, n, (qy, qx), ky] + rel_w[b, n, (qy, qx), kx]`.
        """
        b, heads, length, d = q.shape
        table_h = relative_position_table(h, h, self.rel_pos_h)  # (h, h, D)
        table_w = relative_position_table(w, w, self.rel_pos_w)  # (w, w, D)
        q_grid = q.reshape(b * heads, h, w, d)  # (B, heads, h*w, D) -> (B*heads, h, w, D)
        rel_h = torch.einsum("nyxd,ykd->nyxk", q_grid, table_h)  # (B*heads, h, w, h)
        rel_w = torch.einsum("nyxd,xkd->nyxk", q_grid, table_w)  # (B*heads, h, w, w)
        # (B*heads, h, w, h) -> (B, heads, h*w, h); (B*heads, h, w, w) -> (B, heads, h*w, w)
        return rel_h.reshape(b, heads, length, h), rel_w.reshape(b, heads, length, w)

    def _attend_rel_pos(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        h: int,
        w: int,
        scratch: Scratch | None = None,
    ) -> torch.Tensor:
        """SDPA with the relative-position mask, built for a block of query rows at a time.

        Args:
            q, k, v: (B, heads, h*w, D), any strides (views of the fused qkv output).
            scratch: where the mask buffer is kept for the next block of the same grid size
                (the global blocks' one is 384 MiB: allocating it once saves its page faults).

        Returns:
            (B, heads, h*w, D) laid out as (B, h*w, heads, D) in memory, like a query that is a
            view of the qkv output, so that merging the heads back is free.
        """
        b, heads, length, d = q.shape
        rel_h, rel_w = self._rel_pos_terms(q, h, w)
        rows = max(1, min(length, _MAX_MASK_BYTES // (b * heads * length * q.element_size())))
        shape = (b, heads, rows, h, w)
        mask = q.new_empty(shape) if scratch is None else scratch.get(f"mask{h}x{w}", shape, q)
        if rows >= length:
            torch.add(rel_h[..., None], rel_w[..., None, :], out=mask)
            # (B, heads, L, h, w) -> (B, heads, L, h*w): row (qy, qx), column (ky, kx)
            return F.scaled_dot_product_attention(q, k, v, mask.view(b, heads, length, length))
        out = q.new_empty(b, length, heads, d).transpose(1, 2)  # (B, heads, L, D) view
        for s in range(0, length, rows):
            e = min(s + rows, length)
            block = mask[:, :, : e - s]
            torch.add(rel_h[:, :, s:e, :, None], rel_w[:, :, s:e, None, :], out=block)
            # (B, heads, r, h, w) -> (B, heads, r, h*w)
            block = block.view(b, heads, e - s, length)
            out[:, :, s:e] = F.scaled_dot_product_attention(q[:, :, s:e], k, v, block)
        return out

    def _attend(self, qkv: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """Attention over each (h, w) grid of a fused qkv output, before the output projection.

        Args:
            qkv: (B, h, w, 3C) contiguous.
            scratch: buffers shared with the other blocks of one encoder pass, or None.

        Returns:
            (B, h, w, C).
        """
        b, h, w, c3 = qkv.shape
        n, heads = h * w, self.num_heads
        # Views, no copies: scaled_dot_product_attention accepts these strides, and gives its
        # output the query's (B, h*w, heads, D) memory order.
        # (B, h, w, 3C) -> (B, h*w, 3, heads, D) -> (3, B, heads, h*w, D)
        q, k, v = qkv.view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.use_rel_pos:
            out = self._attend_rel_pos(q, k, v, h, w, scratch)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        # (B, heads, h*w, D) -> (B, h*w, heads, D) -> (B, h, w, C)
        return out.transpose(1, 2).reshape(b, h, w, c3 // 3)

    def forward(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C); `scratch` as in `_attend`."""
        return self.proj(self._attend(linear_into(self.qkv, x, scratch, "qkv"), scratch))

    def forward_windows(
        self, x: torch.Tensor, window: int, scratch: Scratch | None = None
    ) -> torch.Tensor:
        """Attention inside non-overlapping windows: (B, H, W, C) -> (B, H, W, C).

        Same result as partitioning the zero-padded grid into windows, running `forward` on
        each and merging them back (`Block` in Meta's SAM): padding positions are zero inputs,
        so their keys and values are the projection biases, which they are given directly;
        the projections run on the H*W real positions only.
        """
        b, h, w = x.shape[0], x.shape[1], x.shape[2]
        qkv = linear_into(self.qkv, x, scratch, "qkv")  # (B, H, W, 3C)
        out = None
        if scratch is not None:
            nw = -(-h // window) * -(-w // window)
            out = scratch.get("windows", (b * nw, window, window, qkv.shape[-1]), qkv)
        windows = grid_to_windows(qkv, window, self.qkv.bias, out=out)  # (B*nW, win, win, 3C)
        return self.proj(windows_to_grid(self._attend(windows, scratch), window, (h, w)))


class Block(nn.Module):
    """Pre-norm transformer block; attention is windowed when `window_size > 0`, else global.

    Args:
        dim: channels.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP relative to `dim`.
        qkv_bias: bias on the qkv projection.
        use_rel_pos: relative-position terms in attention.
        window_size: window side, 0 for global attention.
        input_size: (H, W) of the token grid (sizes the global blocks' position tables).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        window_size: int = 0,
        input_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(
            dim=dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            input_size=input_size if window_size == 0 else (window_size, window_size),
        )
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(embedding_dim=dim, mlp_dim=int(dim * mlp_ratio), act=nn.GELU)
        self.window_size = window_size

    def forward(self, x: torch.Tensor, scratch: Scratch | None = None) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C).

        Args:
            x: (B, H, W, C) tokens.
            scratch: buffers shared by the blocks of one encoder pass (inference), or None.
        """
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            x = self.attn.forward_windows(x, self.window_size, scratch)
        else:
            x = self.attn(x, scratch)
        # Residual sums in place on fresh outputs: no new (B, H, W, C) buffers.
        x = x.add_(shortcut)
        return self.mlp(self.norm2(x), scratch).add_(x)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: (B, 3, H, W) -> (B, H/p, W/p, C)."""

    def __init__(self, *, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)


class ImageEncoderViT(nn.Module):
    """ViT image encoder of SAM (ViT-B/L/H), parameter names as in Meta's checkpoints.

    Args:
        img_size: side of the square, padded input (1024 for SAM).
        patch_size: patch side (16).
        in_chans: input channels (3).
        embed_dim: token width (768 / 1024 / 1280 for B / L / H).
        depth: number of blocks (12 / 24 / 32).
        num_heads: attention heads (12 / 16 / 16).
        mlp_ratio: MLP hidden width relative to `embed_dim`.
        out_chans: channels of the output embedding (256).
        qkv_bias: bias on the qkv projections.
        use_abs_pos: learned absolute position embedding added after patching.
        use_rel_pos: relative-position terms in attention.
        window_size: window side of the windowed blocks (14).
        global_attn_indexes: indexes of the blocks that attend globally.
    """

    def __init__(
        self,
        *,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        qkv_bias: bool = True,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 14,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed: nn.Parameter | None = None
        if use_abs_pos:
            self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                use_rel_pos=use_rel_pos,
                window_size=0 if i in global_attn_indexes else window_size,
                input_size=(grid, grid),
            )
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised, padded images (B, 3, S, S) -> embeddings (B, out_chans, S/p, S/p)."""
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        # Blocks reuse their large intermediates' memory when inferring (bit-identical).
        scratch = Scratch() if inplace_ok() else None
        for block in self.blocks:
            x = block(x, scratch)
        return self.neck(x.permute(0, 3, 1, 2))  # (B, h, w, C) -> (B, C, h, w)

"""SAM 2's memory attention: the current frame's features attend to the memory bank.

Each layer runs self-attention over the current frame's stride-16 positions, cross-attention to
the memories (spatial memories of past frames, then object-pointer tokens) and an MLP, all
pre-norm. Attention positions are encoded with 2D axial rotary embeddings (RoPE, Su et al.,
https://arxiv.org/abs/2104.09864; axial form of Heo et al., https://arxiv.org/abs/2403.13298):
each memory frame's keys get the same rotations as the query grid, object pointers none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def axial_rope_angles(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of an (end_y, end_x) grid flattened row-major: (end_x*end_y, dim/2).

    The first dim/4 angles rotate by the x coordinate, the last dim/4 by y.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))  # (dim/4,)
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of x by the angles whose cos/sin are given.

    Args:
        x: (B, heads, N, d).
        cos, sin: (N, d/2).

    Returns:
        (B, heads, N, d): pair (x0, x1) becomes (x0 cos - x1 sin, x0 sin + x1 cos).
    """
    return rotate_pairs(x, torch.complex(cos, sin))


def rotate_pairs(
    x: torch.Tensor, freqs_cis: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """`apply_rope` with the rotations as unit complex numbers, repeated over the positions.

    The pairs are multiplied as complex numbers in float32 (one pass, 5-7x faster on CPU than
    the same products written on real tensors) and rounded once to x's dtype.

    Args:
        x: (B, heads, N, d), N a multiple of N' (keys holding several copies of the grid).
        freqs_cis: (N', d/2) complex64 rotations of one grid.
        out: optional (B, heads, N, d) float32 tensor (a view is fine, its last axis
            contiguous) written with the result, for float32 x.

    Returns:
        (B, heads, N, d) (`out` when given).
    """
    b, heads, n, d = x.shape
    reps = n // freqs_cis.shape[0]
    # (B, heads, N, d) -> (B, heads, reps, N', d/2) complex pairs
    pairs = torch.view_as_complex(x.float().reshape(b, heads, reps, -1, d // 2, 2))
    if out is not None and x.dtype == torch.float32:
        # the products land in `out`: no rotated tensor to copy afterwards
        torch.mul(pairs, freqs_cis, out=torch.view_as_complex(out.view(*pairs.shape, 2)))
        return out
    rotated = torch.view_as_real(pairs * freqs_cis)  # (B, heads, reps, N', d/2, 2)
    return rotated.reshape(b, heads, n, d).type_as(x)


class RoPEAttention(nn.Module):
    """Multi-head attention with axial rotary position encoding of queries and keys.

    Args:
        embedding_dim: query (and output) width.
        num_heads: heads.
        downsample_rate: internal width is embedding_dim // downsample_rate.
        kv_in_dim: width of keys and values (the memory width, 64), default embedding_dim.
        rope_theta: rotary frequency base.
        rope_k_repeat: the keys hold several query-sized grids (memory frames); each gets the
            query grid's rotations.
        feat_sizes: (w, h) of the query grid the angles are precomputed for; other query
            lengths (square grids) are computed on the fly.
    """

    def __init__(
        self,
        *,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = (int(feat_sizes[0]), int(feat_sizes[1]))
        self._rope_cache: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _rope(self, n: int, device: torch.device) -> torch.Tensor:
        """(n, head_dim/2) complex64 rotations of a grid of n query positions."""
        key = (n, device)
        if key not in self._rope_cache:
            w, h = self.feat_sizes
            if w * h != n:
                w = h = math.isqrt(n)  # another resolution: a square grid
            angles = axial_rope_angles(self.internal_dim // self.num_heads, w, h, self.rope_theta)
            angles = angles.to(device)
            self._rope_cache[key] = torch.complex(angles.cos(), angles.sin())
        return self._rope_cache[key]

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, -1).transpose(1, 2)  # (B, N, Ci) -> (B, h, N, d)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """Attention of q (B, Nq, C) over k, v (B, Nk, kv_in_dim) -> (B, Nq, C).

        The last `num_k_exclude_rope` keys (object pointers) are not rotated.
        """
        qh = self._split_heads(self.q_proj(q))
        kh = self._split_heads(self.k_proj(k))
        vh = self._split_heads(self.v_proj(v))
        nq = qh.shape[-2]
        freqs_cis = self._rope(nq, qh.device)
        qh = rotate_pairs(qh, freqs_cis)
        num_rope = kh.shape[-2] - num_k_exclude_rope
        if num_rope > 0:
            if num_rope != nq and (not self.rope_k_repeat or num_rope % nq):
                raise ValueError(
                    f"{num_rope} rotated keys for {nq} queries: keys must repeat the query "
                    f"grid (rope_k_repeat={self.rope_k_repeat})"
                )
            # each memory frame's keys get the query grid's rotations, written next to the
            # unrotated pointer keys (no concatenation copy of all keys; not under autograd,
            # which takes no out= arguments)
            tracked = torch.is_grad_enabled() and kh.requires_grad
            if kh.dtype == torch.float32 and num_k_exclude_rope and not tracked:
                keys = torch.empty_like(kh)  # (B, h, Nk, d)
                rotate_pairs(kh[:, :, :num_rope], freqs_cis, out=keys[:, :, :num_rope])
                keys[:, :, num_rope:] = kh[:, :, num_rope:]
                kh = keys
            else:
                rotated = rotate_pairs(kh[:, :, :num_rope], freqs_cis)
                kh = (
                    torch.cat([rotated, kh[:, :, num_rope:]], dim=2)
                    if num_k_exclude_rope
                    else rotated
                )
        out = F.scaled_dot_product_attention(qh, kh, vh)  # (B, h, Nq, d)
        b, heads, _, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, heads * d))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memories, ReLU MLP.

    Positional codes are added to the cross-attention keys only (SAM 2's setting); dropout of
    training is not modelled (this layer is for inference).

    Args:
        self_attention: attention of the frame over itself.
        cross_attention: attention of the frame over the memories.
        d_model: width (256).
        dim_feedforward: MLP hidden width (2048).
        pos_enc_at_attn: add the query codes in self-attention.
        pos_enc_at_cross_attn_queries: add the query codes to cross-attention queries.
        pos_enc_at_cross_attn_keys: add the memory codes to cross-attention keys.
    """

    def __init__(
        self,
        *,
        self_attention: RoPEAttention,
        cross_attention: RoPEAttention,
        d_model: int,
        dim_feedforward: int,
        pos_enc_at_attn: bool = False,
        pos_enc_at_cross_attn_queries: bool = False,
        pos_enc_at_cross_attn_keys: bool = True,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor,
        query_pos: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """tgt (B, N, C), memory (B, M, mem_dim), pos (B, M, mem_dim), query_pos (B, N, C)."""
        x = self.norm1(tgt)
        q = x + query_pos if self.pos_enc_at_attn else x
        tgt = tgt + self.self_attn(q, q, x)
        x = self.norm2(tgt)
        tgt = tgt + self.cross_attn_image(
            x + query_pos if self.pos_enc_at_cross_attn_queries else x,
            memory + pos if self.pos_enc_at_cross_attn_keys else memory,
            memory,
            num_k_exclude_rope=num_k_exclude_rope,
        )
        x = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(x)))


class MemoryAttention(nn.Module):
    """A stack of `MemoryAttentionLayer`s and a final LayerNorm.

    Args:
        layers: the built layers (4 in SAM 2).
        d_model: width (256).
        pos_enc_at_input: add 0.1 x the position codes to the input features.
    """

    def __init__(
        self, *, layers: list[MemoryAttentionLayer], d_model: int, pos_enc_at_input: bool = True
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(layers)
        self.num_layers = len(layers)
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input

    def forward(
        self,
        curr: torch.Tensor | list[torch.Tensor],
        memory: torch.Tensor,
        curr_pos: torch.Tensor | list[torch.Tensor] | None = None,
        memory_pos: torch.Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Condition the current frame on the memories (sequence-first layouts).

        Args:
            curr: (HW, B, C) current features (or a one-element list of it).
            memory: (M, B, mem_dim) spatial memories, then `num_obj_ptr_tokens` pointer tokens.
            curr_pos: (HW, B, C) position codes of `curr` (or a one-element list).
            memory_pos: (M, B, mem_dim) codes of the memories.
            num_obj_ptr_tokens: trailing memory tokens that are object pointers (no RoPE).

        Returns:
            (HW, B, C) conditioned features.
        """
        if isinstance(curr, list):
            if len(curr) != 1:
                raise ValueError(f"expected one feature level, got {len(curr)}")
            curr = curr[0]
        if isinstance(curr_pos, list):
            curr_pos = curr_pos[0]
        if curr_pos is None or memory_pos is None:
            raise ValueError("memory attention needs curr_pos and memory_pos")
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"batch sizes differ: curr {curr.shape[1]}, memory {memory.shape[1]}")
        output = curr
        if self.pos_enc_at_input:
            output = output + 0.1 * curr_pos
        # sequence-first -> batch-first: (N, B, C) -> (B, N, C)
        output = output.transpose(0, 1)
        query_pos = curr_pos.transpose(0, 1)
        memory = memory.transpose(0, 1)
        memory_pos = memory_pos.transpose(0, 1)
        for layer in self.layers:
            output = layer(output, memory, memory_pos, query_pos, num_obj_ptr_tokens)
        return self.norm(output).transpose(0, 1)  # (B, N, C) -> (N, B, C)

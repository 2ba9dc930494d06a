"""SAM's two-way transformer: prompt tokens and image positions attend to each other.

Each layer runs (1) self-attention of the tokens, (2) tokens -> image cross-attention, (3) an MLP
on the tokens and (4) image -> tokens cross-attention; a final tokens -> image attention follows.

Many prompts on one image share the image embedding, so this implementation avoids the B-fold copy
of the image that a straightforward batch makes, and the per-prompt projections of the 4096 image
positions where the few (T ~ 7) prompt tokens allow it:
- while the image keys are still shared by several prompts (batch 1, before the first image ->
  tokens update), their projections are computed once for all prompts;
- otherwise tokens -> image attention folds the key and value projections into the queries:
  scores q.(W_k x) = (W_k^T q).x, and since softmax rows sum to 1 the value projection commutes
  with the weighted sum (`Attention.forward_folded`, 8T instead of 256 multiply-adds per image
  position);
- image -> tokens attention has only T keys per head, so its query and output projections are
  folded into the keys and values likewise (`Attention.forward_few_keys`). Its softmax over T
  keys is written out: an 8T-wide softmax gains nothing from a fused kernel, while the folding
  needs the probabilities themselves.
All forms equal the plain computation up to float rounding (tests/models/sam/test_sam_layers.py);
prompts with many tokens (over 15 points) use the plain `scaled_dot_product_attention` form.

When inferring, the per-prompt (B, h*w, C) intermediates other than the layer norms' outputs
(image positions plus codes, the image -> tokens output) are written into buffers reused by every
layer (`inplace.Scratch`), with the same kernels: bit-identical, fewer page faults.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.common import MLPBlock
from masktron.models.sam.inplace import Scratch, inplace_ok, layer_norm_into


class Attention(nn.Module):
    """Multi-head attention whose q/k/v projections may narrow the width by `downsample_rate`.

    Args:
        embedding_dim: input and output width C.
        num_heads: heads; C // downsample_rate must be divisible by it.
        downsample_rate: internal width is C // downsample_rate.
    """

    def __init__(self, *, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, -1).transpose(1, 2)  # (B, N, Ci) -> (B, h, N, d)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Plain attention. Batches broadcast: q (Bq, Nq, C), k and v (Bk, Nk, C), Bq or Bk = 1.

        Returns:
            (max(Bq, Bk), Nq, C).
        """
        qh = self._split_heads(self.q_proj(q))
        kh = self._split_heads(self.k_proj(k))
        vh = self._split_heads(self.v_proj(v))
        bq, heads, nq, d = qh.shape
        bk = kh.shape[0]
        if bk == 1 and bq > 1:
            # Keys shared by all queries: one attention over the queries of the whole batch.
            # (B, h, Nq, d) -> (h, B, Nq, d) -> (1, h, B*Nq, d)
            stacked = qh.transpose(0, 1).reshape(1, heads, bq * nq, d)
            out = F.scaled_dot_product_attention(stacked, kh, vh)
            out = out.reshape(heads, bq, nq, d).transpose(0, 1)  # (1, h, B*Nq, d) -> (B, h, Nq, d)
        else:
            if bq == 1 and bk > 1:
                qh = qh.expand(bk, -1, -1, -1)
            out = F.scaled_dot_product_attention(qh, kh, vh)
        b = out.shape[0]
        out = out.transpose(1, 2).reshape(b, nq, heads * d)  # (B, h, Nq, d) -> (B, Nq, Ci)
        return self.out_proj(out)

    def folding_pays(self, num_tokens: int) -> bool:
        """Whether the folded forms beat `forward` when one side has `num_tokens` tokens.

        Projecting the long side costs 2 * C * Ci per position, the folded scores and weighted
        sums 2 * heads * T * C.
        """
        return self.num_heads * num_tokens < self.internal_dim

    def forward_folded(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Same as `forward` for few queries and many keys, without projecting the keys.

        Args:
            q: (B, T, C) queries, T small.
            k: (B, N, C) keys.
            v: (B, N, C) values.

        Returns:
            (B, T, C).
        """
        b, t, _ = q.shape
        heads = self.num_heads
        d = self.internal_dim // heads
        qh = self.q_proj(q).reshape(b, t, heads, d)  # (B, T, Ci) -> (B, T, h, d)
        w_k = self.k_proj.weight.reshape(heads, d, -1)  # (Ci, C) -> (h, d, C)
        w_v = self.v_proj.weight.reshape(heads, d, -1)  # (Ci, C) -> (h, d, C)
        # Scores per head: (W_k^T q_h) . x; q.b_k is constant over keys and cancels in the softmax.
        # (B, h, T, C) -> (B, 1, h*T, C): every (head, token) is an independent softmax row.
        q_fold = torch.einsum("bthd,hdc->bhtc", qh, w_k).reshape(b, 1, heads * t, -1)
        mixed = F.scaled_dot_product_attention(
            q_fold, k.unsqueeze(1), v.unsqueeze(1), scale=d**-0.5
        )  # (B, 1, h*T, C): softmax-weighted sums of the raw values
        mixed = mixed.reshape(b, heads, t, -1)  # (B, 1, h*T, C) -> (B, h, T, C)
        out = torch.einsum("bhtc,hdc->bthd", mixed, w_v) + self.v_proj.bias.reshape(heads, d)
        return self.out_proj(out.reshape(b, t, heads * d))  # (B, T, h, d) -> (B, T, Ci)

    def forward_few_keys(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Same as `forward` (plus `residual`) for many queries and few keys, without projecting
        the queries.

        Args:
            q: (Bq, N, C) queries (image positions), Bq = 1 (shared by all prompts) or B.
            k: (B, T, C) keys, T small.
            v: (B, T, C) values.
            residual: (1 or B, N, C) added to the output inside the last matrix product.
            out: a (B, N, C) buffer for the result, or None. It must not overlap q, k or v;
                it may be `residual` itself (a B-batch one), which is then added to in place.

        Returns:
            (B, N, C).
        """
        b, t, c = k.shape
        heads = self.num_heads
        d = self.internal_dim // heads
        scale = d**-0.5
        kh = self.k_proj(k).reshape(b, t, heads, d)  # (B, T, Ci) -> (B, T, h, d)
        vh = self.v_proj(v).reshape(b, t, heads, d)  # (B, T, Ci) -> (B, T, h, d)
        # Scores are laid out (B, h, T, N): the softmax over T then runs along a strided axis,
        # vectorised over the N image positions.
        if q.shape[0] == 1:
            # Shared queries: project them once; the scores have only d terms each.
            qh = self.q_proj(q[0]).reshape(-1, heads, d)  # (N, Ci) -> (N, h, d)
            logits = torch.einsum("bthd,nhd->bhtn", kh * scale, qh)  # (B, h, T, N)
        else:
            w_q = self.q_proj.weight.reshape(heads, d, c)  # (Ci, C) -> (h, d, C)
            k_fold = torch.einsum("bthd,hdc->bhtc", kh * scale, w_q).reshape(b, heads * t, c)
            k_bias = torch.einsum("bthd,hd->bht", kh * scale, self.q_proj.bias.reshape(heads, d))
            # (B, h*T, C) @ (B, C, N) + (B, h*T, 1) -> (B, h*T, N) -> (B, h, T, N)
            logits = torch.baddbmm(k_bias.reshape(b, heads * t, 1), k_fold, q.transpose(1, 2))
            logits = logits.reshape(b, heads, t, -1)
        probs = logits.softmax(dim=2).reshape(b, heads * t, -1)  # (B, h, T, N) -> (B, h*T, N)
        w_o = self.out_proj.weight.reshape(c, heads, d)  # (C, Ci) -> (C, h, d)
        v_fold = torch.einsum("bthd,chd->bhtc", vh, w_o).reshape(b, heads * t, c)  # (B, h*T, C)
        # Each head's probabilities sum to 1, so b_o / heads on every value row adds b_o once.
        v_fold = v_fold + self.out_proj.bias / heads
        if residual is None:
            return torch.bmm(probs.transpose(1, 2), v_fold, out=out)  # (B, N, h*T) @ (B, h*T, C)
        return torch.baddbmm(residual, probs.transpose(1, 2), v_fold, out=out)


def _attend_image_to_tokens(
    attn: Attention,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    residual: torch.Tensor,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """`residual` + image positions (Bq, N, C) attending to tokens (B, T, C); picks the cheaper
    exact form. With `scratch`, the (B, N, C) result is written into its "image_out" buffer, or
    added in place when `residual` is the scratch's "keys" (a previous layer's output, read for
    the last time here): the same kernels, without copying the residual into a new buffer."""
    out = None
    if scratch is not None and scratch.holds("keys", residual):
        out = residual
    elif scratch is not None:
        shape = (k.shape[0], q.shape[1], residual.shape[2])
        out = scratch.get("image_out", shape, residual)
    if attn.folding_pays(k.shape[1]):
        return attn.forward_few_keys(q, k, v, residual=residual, out=out)
    return torch.add(residual, attn(q, k, v), out=out)


def _with_pe(keys: torch.Tensor, key_pe: torch.Tensor, scratch: Scratch | None) -> torch.Tensor:
    """`keys + key_pe`; per-prompt keys (batch > 1) go into `scratch`'s "keys_pe" buffer."""
    if scratch is None or keys.shape[0] == 1:
        return keys + key_pe
    return torch.add(keys, key_pe, out=scratch.get("keys_pe", keys.shape, keys))


def _attend_tokens_to_image(
    attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Tokens (B, T, C) attend to image positions (Bk, N, C); picks the cheaper exact form.

    Image positions shared by several prompts are projected once (plain form); otherwise the
    projections are folded into the tokens when they are few.
    """
    shared = k.shape[0] == 1 and q.shape[0] > 1
    if not shared and attn.folding_pays(q.shape[1]):
        return attn.forward_folded(q, k, v)
    return attn(q, k, v)


class TwoWayAttentionBlock(nn.Module):
    """One layer of the two-way transformer.

    Args:
        embedding_dim: token and image width C.
        num_heads: attention heads.
        mlp_dim: hidden width of the token MLP.
        activation: MLP activation class.
        attention_downsample_rate: width reduction inside the cross-attentions.
        skip_first_layer_pe: the first layer's self-attention sees the tokens without their
            positional encoding and has no residual (as SAM was trained).
    """

    def __init__(
        self,
        *,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim=embedding_dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim=embedding_dim,
            num_heads=num_heads,
            downsample_rate=attention_downsample_rate,
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim=embedding_dim, mlp_dim=mlp_dim, act=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim=embedding_dim,
            num_heads=num_heads,
            downsample_rate=attention_downsample_rate,
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        scratch: Scratch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer.

        Args:
            queries: (B, T, C) prompt tokens.
            keys: (Bk, N, C) image positions, Bk = 1 (shared by all prompts) or B.
            query_pe: (B, T, C) the tokens' positional codes (their initial values).
            key_pe: (1, N, C) positional codes of the image positions.
            scratch: buffers for the per-prompt image intermediates (inference), or None. The
                returned keys may live in it (its "keys" buffer, until the next layer's).

        Returns:
            queries (B, T, C) and keys (B, N, C).
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        k = _with_pe(keys, key_pe, scratch)
        q = queries + query_pe
        attn_out = _attend_tokens_to_image(self.cross_attn_token_to_image, q, k, keys)
        queries = self.norm2(queries + attn_out)

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        attn = self.cross_attn_image_to_token
        keys = _attend_image_to_tokens(attn, k, q, queries, keys, scratch)  # ("image_out")
        return queries, layer_norm_into(self.norm4, keys, scratch, "keys")


class TwoWayTransformer(nn.Module):
    """Stack of `TwoWayAttentionBlock`s plus a final tokens -> image attention.

    Args:
        depth: number of layers (2 for SAM).
        embedding_dim: width C (256).
        num_heads: attention heads (8).
        mlp_dim: hidden width of the token MLPs (2048).
        activation: MLP activation class.
        attention_downsample_rate: width reduction inside the cross-attentions (2).
    """

    def __init__(
        self,
        *,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=i == 0,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim=embedding_dim,
            num_heads=num_heads,
            downsample_rate=attention_downsample_rate,
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        point_embedding: torch.Tensor,
        scratch: Scratch | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image_embedding: (Bk, C, h, w) image (plus dense prompt) embedding; Bk = 1 when all
                prompts share it, else B.
            image_pe: (1, C, h, w) positional codes of the image positions.
            point_embedding: (B, T, C) prompt tokens (output tokens first).
            scratch: buffers to reuse for the per-prompt intermediates; a caller running many
                batches may pass one to keep them between calls. By default a new one is made
                when inferring.

        Returns:
            tokens (B, T, C) and image positions (B, h*w, C) after the last layer; the image
            positions may live in `scratch` (valid until its next use).
        """
        keys = image_embedding.flatten(2).transpose(1, 2)  # (Bk, C, h, w) -> (Bk, h*w, C)
        key_pe = image_pe.flatten(2).transpose(1, 2)  # (1, C, h, w) -> (1, h*w, C)
        queries = point_embedding
        if not inplace_ok():
            scratch = None  # recording autograd, tracing or exporting: the functional forms
        elif scratch is None:
            scratch = Scratch()
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, scratch)
        q = queries + point_embedding
        k = _with_pe(keys, key_pe, scratch)
        attn_out = _attend_tokens_to_image(self.final_attn_token_to_image, q, k, keys)
        queries = self.norm_final_attn(queries + attn_out)
        if keys.shape[0] != queries.shape[0]:  # depth 0: the image was never updated per prompt
            keys = keys.expand(queries.shape[0], -1, -1)
        return queries, keys

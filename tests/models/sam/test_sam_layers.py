"""SAM's layers against plain reference computations written out in the test."""

from __future__ import annotations

import math

import pytest
import torch
from sam_window_reference import window_partition, window_unpartition

from masktron.models.sam.common import LayerNorm2d
from masktron.models.sam.image_encoder import (
    Attention as ViTAttention,
)
from masktron.models.sam.image_encoder import relative_position_table
from masktron.models.sam.prompt_encoder import PromptEncoder
from masktron.models.sam.transformer import Attention, TwoWayTransformer


def _plain_attention(attn: Attention, q, k, v):
    """Multi-head attention with an explicit softmax, batches broadcast like the module."""
    heads = attn.num_heads
    qp, kp, vp = attn.q_proj(q), attn.k_proj(k), attn.v_proj(v)
    b = max(qp.shape[0], kp.shape[0])
    qp, kp, vp = (t.expand(b, -1, -1) for t in (qp, kp, vp))

    def split(t):
        return t.reshape(b, t.shape[1], heads, -1).transpose(1, 2)

    qh, kh, vh = split(qp), split(kp), split(vp)
    w = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1]), dim=-1)
    out = (w @ vh).transpose(1, 2).reshape(b, q.shape[1], -1)
    return attn.out_proj(out)


@pytest.fixture
def attn():
    torch.manual_seed(0)
    return Attention(embedding_dim=32, num_heads=4, downsample_rate=2)


def test_attention_forms_agree(attn):
    torch.manual_seed(1)
    tokens, image = torch.randn(3, 5, 32), torch.randn(3, 50, 32)
    with torch.no_grad():
        ref = _plain_attention(attn, tokens, image, image)
        torch.testing.assert_close(attn(tokens, image, image), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            attn.forward_folded(tokens, image, image), ref, atol=1e-5, rtol=1e-5
        )
        # image -> tokens, keys per prompt and shared queries
        ref = _plain_attention(attn, image, tokens, tokens)
        torch.testing.assert_close(
            attn.forward_few_keys(image, tokens, tokens), ref, atol=1e-5, rtol=1e-5
        )
        shared = image[:1]
        ref = _plain_attention(attn, shared, tokens, tokens)
        torch.testing.assert_close(
            attn.forward_few_keys(shared, tokens, tokens), ref, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            attn.forward_few_keys(shared, tokens, tokens, residual=shared),
            ref + shared,
            atol=1e-5,
            rtol=1e-5,
        )
        torch.testing.assert_close(attn(shared, tokens, tokens), ref, atol=1e-5, rtol=1e-5)
        # tokens -> shared image
        ref = _plain_attention(attn, tokens, shared, shared)
        torch.testing.assert_close(attn(tokens, shared, shared), ref, atol=1e-5, rtol=1e-5)


def test_two_way_transformer_shared_image_equals_repeated_image():
    torch.manual_seed(0)
    model = TwoWayTransformer(depth=2, embedding_dim=32, num_heads=4, mlp_dim=64).eval()
    image = torch.randn(1, 32, 6, 7)
    pe = torch.randn(1, 32, 6, 7)
    tokens = torch.randn(4, 7, 32)
    with torch.no_grad():
        q_shared, k_shared = model(image, pe, tokens)
        q_rep, k_rep = model(image.expand(4, -1, -1, -1).contiguous(), pe, tokens)
        singles = [model(image, pe, tokens[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(q_shared, q_rep, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_shared, k_rep, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(q_shared, torch.cat([s[0] for s in singles]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_shared, torch.cat([s[1] for s in singles]), atol=1e-5, rtol=1e-5)


def test_relative_position_table_by_hand():
    table = torch.arange(5.0)[:, None].repeat(1, 2)  # (2*3-1, 2): row r holds r
    out = relative_position_table(3, 3, table)
    # entry [i, j] embeds offset i - j, stored at row i - j + 2
    assert out[..., 0].tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]


def test_vit_attention_with_rel_pos_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = ViTAttention(dim=16, num_heads=2, use_rel_pos=True, input_size=(3, 4)).eval()
    with torch.no_grad():
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
        x = torch.randn(2, 3, 4, 16)
        b, h, w, c = x.shape
        qkv = attn.qkv(x).reshape(b, h * w, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, d)
        logits = (q / math.sqrt(c // 2)) @ k.transpose(-1, -2)
        rh = relative_position_table(h, h, attn.rel_pos_h)  # (h, h, d)
        rw = relative_position_table(w, w, attn.rel_pos_w)
        for qi in range(h * w):
            for ki in range(h * w):
                qy, qx, ky, kx = qi // w, qi % w, ki // w, ki % w
                logits[:, :, qi, ki] += q[:, :, qi] @ rh[qy, ky] + q[:, :, qi] @ rw[qx, kx]
        out = torch.softmax(logits, -1) @ v
        ref = attn.proj(out.transpose(1, 2).reshape(b, h, w, c))
        torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 9, 11, 3)
    windows, padded = window_partition(x, 4)
    assert windows.shape == (2 * 3 * 3, 4, 4, 3) and padded == (12, 12)
    torch.testing.assert_close(windows[0], x[0, :4, :4])
    torch.testing.assert_close(window_unpartition(windows, 4, padded, (9, 11)), x)


def test_layernorm2d_normalises_channels():
    torch.manual_seed(0)
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 6, 5, 4) * 3 + 1
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    ref = (x - mean) / torch.sqrt(var + 1e-6) * ln.weight[:, None, None] + ln.bias[:, None, None]
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)


def test_prompt_encoder_tokens_and_dense_embedding():
    torch.manual_seed(0)
    enc = PromptEncoder(
        embed_dim=8, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4
    )
    coords = torch.tensor([[[10.0, 20.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, -1]])
    sparse, dense = enc(points=(coords, labels), boxes=None, masks=None)
    assert sparse.shape == (1, 3, 8)  # two points + the padding point added without a box
    pe = enc.pe_layer.forward_with_coords(coords + 0.5, (64, 64))
    torch.testing.assert_close(sparse[0, 0], pe[0, 0] + enc.point_embeddings[1].weight[0])
    torch.testing.assert_close(sparse[0, 1], enc.not_a_point_embed.weight[0])
    torch.testing.assert_close(sparse[0, 2], enc.not_a_point_embed.weight[0])
    assert dense.shape == (1, 8, 4, 4)
    torch.testing.assert_close(dense[0, :, 2, 3], enc.no_mask_embed.weight[0])
    box_sparse, _ = enc(points=None, boxes=torch.tensor([[1.0, 2.0, 30.0, 40.0]]), masks=None)
    corners = enc.pe_layer.forward_with_coords(torch.tensor([[[1.5, 2.5], [30.5, 40.5]]]), (64, 64))
    torch.testing.assert_close(box_sparse[0, 1], corners[0, 1] + enc.point_embeddings[3].weight[0])
    _, mask_dense = enc(points=None, boxes=None, masks=torch.randn(2, 1, 16, 16))
    assert mask_dense.shape == (2, 8, 4, 4)
    with pytest.raises(ValueError, match="batch sizes differ"):
        enc(points=(coords, labels), boxes=torch.zeros(2, 4), masks=None)

"""The decoder's folded positional codes and in-place residual equal the plain two-way layers."""

from __future__ import annotations

import torch

from masktron.models.sam.transformer import Attention, TwoWayTransformer


def _plain_two_way(model: TwoWayTransformer, image, image_pe, tokens):
    """Meta's TwoWayTransformer written with plain attention calls and explicit sums."""
    keys = image.flatten(2).transpose(1, 2).expand(tokens.shape[0], -1, -1)  # (B, N, C)
    key_pe = image_pe.flatten(2).transpose(1, 2)  # (1, N, C)
    queries = tokens
    for i, layer in enumerate(model.layers):
        if i == 0:
            queries = layer.self_attn(queries, queries, queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q, q, queries)
        queries = layer.norm1(queries)
        q, k = queries + tokens, keys + key_pe
        queries = layer.norm2(queries + layer.cross_attn_token_to_image(q, k, keys))
        queries = layer.norm3(queries + layer.mlp(queries))
        q, k = queries + tokens, keys + key_pe
        keys = layer.norm4(keys + layer.cross_attn_image_to_token(k, q, queries))
    q, k = queries + tokens, keys + key_pe
    out = model.final_attn_token_to_image(q, k, keys)
    return model.norm_final_attn(queries + out), keys


def test_folded_positional_codes_and_in_place_residual():
    torch.manual_seed(0)
    attn = Attention(embedding_dim=32, num_heads=4, downsample_rate=2)
    tokens, image = torch.randn(3, 5, 32), torch.randn(3, 50, 32)
    pe, residual = torch.randn(1, 50, 32), torch.randn(3, 50, 32)
    with torch.no_grad():
        ref = attn(tokens, image + pe, image)
        torch.testing.assert_close(attn.forward_folded(tokens, image, image, pe), ref)
        ref = residual + attn(image + pe, tokens, tokens)
        out = attn.forward_few_keys(image, tokens, tokens, residual=residual, q_pe=pe)
        torch.testing.assert_close(out, ref)
        target = residual.clone()
        out = attn.forward_few_keys(
            image, tokens, tokens, residual=target, q_pe=pe, residual_in_place=True
        )
        assert out.data_ptr() == target.data_ptr()
        torch.testing.assert_close(out, ref)


def test_two_way_transformer_equals_plain_layers():
    torch.manual_seed(0)
    # 2 heads x 7 tokens < 32 internal channels: every folded form is taken.
    model = TwoWayTransformer(depth=2, embedding_dim=64, num_heads=2, mlp_dim=64).eval()
    assert model.final_attn_token_to_image.folding_pays(7)
    image, pe, tokens = torch.randn(1, 64, 6, 7), torch.randn(1, 64, 6, 7), torch.randn(4, 7, 64)
    with torch.no_grad():
        ref = _plain_two_way(model, image, pe, tokens)
        for batch_image in (image, image.expand(4, -1, -1, -1).contiguous()):
            before = batch_image.clone()
            queries, keys = model(batch_image, pe, tokens)
            torch.testing.assert_close(queries, ref[0])
            torch.testing.assert_close(keys, ref[1])
            assert torch.equal(batch_image, before)  # the caller's image is never overwritten

"""SAM's in-place inference forms (reused buffers, in-place activations) equal the functional
forms bit for bit, and are used only when inferring."""

from __future__ import annotations

import pytest
import torch

from masktron.models.sam import image_encoder, inplace, mask_decoder, transformer
from masktron.models.sam.image_encoder import ImageEncoderViT
from masktron.models.sam.inplace import Scratch
from masktron.models.sam.mask_decoder import MaskDecoder
from masktron.models.sam.transformer import TwoWayTransformer
from masktron.models.sam.windows import grid_to_windows

_INPLACE_OK = inplace.inplace_ok


def _set_inplace(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Switch the in-place forms on or off everywhere they are looked up."""
    value = _INPLACE_OK if on else (lambda: False)
    for module in (inplace, image_encoder, mask_decoder, transformer):
        monkeypatch.setattr(module, "inplace_ok", value)


def _count_scratch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    get = Scratch.get

    def spy(self, name, shape, like):
        names.append(name)
        return get(self, name, shape, like)

    monkeypatch.setattr(Scratch, "get", spy)
    return names


def test_inplace_only_when_inferring():
    with torch.no_grad():
        assert inplace.inplace_ok()
    assert not inplace.inplace_ok()  # autograd records: functional forms
    x = torch.randn(3, 4)
    with torch.no_grad():
        out = inplace.activation_(torch.nn.GELU(), x)
    assert out is x
    y = torch.randn(3, 4)
    assert inplace.activation_(torch.nn.GELU(), y) is not y


def test_scratch_hands_out_one_buffer_per_name_and_shape():
    scratch, like = Scratch(), torch.zeros(1)
    a = scratch.get("a", (2, 3), like)
    assert scratch.get("a", (2, 3), like) is a
    assert scratch.get("b", (2, 3), like) is not a
    assert scratch.get("a", (3, 2), like).shape == (3, 2)
    b = scratch.get("b", (2, 3), like)
    assert scratch.holds("b", b) and not scratch.holds("a", b) and not scratch.holds("c", b)
    assert not scratch.holds("b", b[:1]) and not scratch.holds("b", b.t())
    out = torch.empty(4 * 9, 3, 3, 5)  # 7x8 grid in 3x3 windows: 3 x 3 windows per image
    grid = torch.randn(4, 7, 8, 5)
    assert grid_to_windows(grid, 3, None, out=out) is out
    assert torch.equal(out, grid_to_windows(grid, 3, None))
    with pytest.raises(ValueError, match="contiguous"):
        grid_to_windows(grid, 3, None, out=torch.empty(1, 3, 3, 5))


def test_batch_blocks(monkeypatch):
    monkeypatch.setattr(inplace, "_BLOCK_BYTES", 100)
    assert inplace.batch_blocks(7, 30) == [(0, 3), (3, 7)]  # (no item alone: 6 joins 3..5)
    assert inplace.batch_blocks(6, 30) == [(0, 3), (3, 6)]
    assert inplace.batch_blocks(5, 1000) == [(0, 2), (2, 5)]  # at least 2 items per block
    assert inplace.batch_blocks(3, 10) == [(0, 3)]
    assert inplace.batch_blocks(1, 1000) == [(0, 1)]


def test_layer_norm_into_a_buffer_block_by_block(monkeypatch):
    """Normalised a few batch items at a time into the named buffer: bit-identical to one call,
    also in place (the input being the buffer), and a plain call without a scratch."""
    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(16)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(7, 10, 16)
    monkeypatch.setattr(inplace, "_BLOCK_BYTES", 3 * 10 * 16 * 4)  # 3 items per block
    with torch.no_grad():
        ref = norm(x)
        scratch = Scratch()
        out = inplace.layer_norm_into(norm, x, scratch, "n")
        assert scratch.holds("n", out) and torch.equal(out, ref)
        out.copy_(x)
        assert inplace.layer_norm_into(norm, out, scratch, "n") is out  # in place
        assert torch.equal(out, ref)
        assert torch.equal(inplace.layer_norm_into(norm, x, None, "n"), ref)


def test_encoder_inplace_equals_functional(monkeypatch):
    torch.manual_seed(0)
    # 16x16 token grid: 7x7 windows with padding, and one global block.
    encoder = ImageEncoderViT(
        img_size=128,
        patch_size=8,
        embed_dim=32,
        depth=3,
        num_heads=2,
        out_chans=16,
        window_size=7,
        global_attn_indexes=(1,),
    ).eval()
    with torch.no_grad():
        for block in encoder.blocks:
            block.attn.rel_pos_h.normal_()
            block.attn.rel_pos_w.normal_()
        x = torch.randn(2, 3, 128, 128)
        _set_inplace(monkeypatch, False)
        names = _count_scratch(monkeypatch)
        ref = encoder(x)
        assert not names
        _set_inplace(monkeypatch, True)
        out = encoder(x)
    assert {"windows", "mask16x16", "mask7x7", "qkv", "mlp_hidden"} <= set(names)
    assert torch.equal(out, ref)


def _tiny_decoder(dim: int) -> MaskDecoder:
    """A seeded random SAM mask decoder of width `dim`, in eval mode."""
    torch.manual_seed(0)
    return MaskDecoder(
        transformer_dim=dim,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=2, mlp_dim=64),
        iou_head_hidden_dim=dim,
    ).eval()


def test_decoder_inplace_equals_functional(monkeypatch):
    dim = 32
    decoder = _tiny_decoder(dim)
    image, pe = torch.randn(1, dim, 8, 8), torch.randn(1, dim, 8, 8)
    dense = torch.randn(1, dim, 8, 8)
    scratch = Scratch()
    with torch.no_grad():
        for batch in (5, 3, 5):  # one scratch kept across batches of different sizes
            sparse = torch.randn(batch, 2, dim)
            _set_inplace(monkeypatch, False)
            ref = decoder(image, pe, sparse, dense, multimask_output=True)
            ref_tokens, ref_src = decoder.run_transformer(image, pe, sparse, dense)
            _set_inplace(monkeypatch, True)
            names = _count_scratch(monkeypatch)
            out = decoder(image, pe, sparse, dense, multimask_output=True)
            tokens, src = decoder.run_transformer(image, pe, sparse, dense, scratch=scratch)
            monkeypatch.undo()
            assert {"keys_pe", "image_out", "keys"} <= set(names)
            assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
            assert torch.equal(tokens, ref_tokens) and torch.equal(src, ref_src)


def test_decoder_upscales_a_few_prompts_at_a_time_bit_identically(monkeypatch):
    """Inferring, the upscaling and the hypernetwork products run on blocks of prompts (sized
    by `inplace.batch_blocks`); the logits equal those of one pass over the whole batch."""
    dim = 32
    decoder = _tiny_decoder(dim)
    tokens, src = torch.randn(7, 5, dim), torch.randn(7, 8 * 8, dim)
    calls: list[int] = []
    decoder.output_upscaling.register_forward_pre_hook(lambda _m, args: calls.append(len(args[0])))
    per_prompt = (dim // 8) * 32 * 32 * 4  # one prompt's (C/8, 4h, 4w) float32 map
    for ids in ([1, 2, 3], [0]):
        with torch.no_grad():
            _set_inplace(monkeypatch, False)
            ref = decoder.masks_from_tokens(tokens, src, ids, (8, 8))
            _set_inplace(monkeypatch, True)
            outs = {}
            for prompts in (2, 3, 1):  # (1: blocks of 2, never one prompt alone)
                monkeypatch.setattr(inplace, "_BLOCK_BYTES", prompts * per_prompt)
                calls.clear()
                outs[prompts] = decoder.masks_from_tokens(tokens, src, ids, (8, 8)), calls[:]
            monkeypatch.undo()
        # a last prompt alone joins the block before it (a single mask of a batch of one is
        # rounded differently: a matrix-vector product)
        assert [calls for _, calls in outs.values()] == [[2, 2, 3], [3, 4], [2, 2, 3]]
        for out, _ in outs.values():
            assert out.shape == ref.shape == (7, len(ids), 32, 32)
            assert torch.equal(out, ref)

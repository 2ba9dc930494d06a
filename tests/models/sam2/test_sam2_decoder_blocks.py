"""SAM 2's mask decoder upscales a few prompts at a time when inferring (`inplace.batch_blocks`):
its outputs equal one pass over the whole batch, bit for bit."""

from __future__ import annotations

import pytest
import torch

from masktron.models.sam import inplace
from masktron.models.sam.transformer import TwoWayTransformer
from masktron.models.sam2 import mask_decoder


def _decoder(dim: int) -> mask_decoder.SAM2MaskDecoder:
    torch.manual_seed(0)
    return mask_decoder.SAM2MaskDecoder(
        transformer_dim=dim,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=2, mlp_dim=64),
        iou_head_hidden_dim=dim,
        use_high_res_features=True,
        pred_obj_scores=True,
    ).eval()


@pytest.mark.parametrize("shared_image", [True, False])
def test_blocks_equal_one_pass(monkeypatch, shared_image):
    dim, h, batch = 32, 8, 7
    decoder = _decoder(dim)
    images = 1 if shared_image else batch
    embedding = torch.randn(images, dim, h, h)
    pe = torch.randn(1, dim, h, h)
    sparse = torch.randn(batch, 2, dim)
    dense = torch.randn(batch, dim, h, h)
    high_res = [
        torch.randn(images, dim // 8, 4 * h, 4 * h),
        torch.randn(images, dim // 4, 2 * h, 2 * h),
    ]
    calls: list[int] = []
    decoder.output_upscaling[0].register_forward_pre_hook(lambda _m, a: calls.append(len(a[0])))

    def run():
        calls.clear()
        with torch.no_grad():
            return decoder.predict_masks(
                embedding, pe, sparse, dense, repeat_image=False, high_res_features=high_res
            )

    if shared_image:
        embedding = embedding.expand(batch, -1, -1, -1)  # one image for every prompt (a view)
    monkeypatch.setattr(mask_decoder, "inplace_ok", lambda: False)
    ref = run()
    assert calls == [batch]
    monkeypatch.undo()
    per_prompt = (dim // 8) * (4 * h) ** 2 * 4  # one prompt's (C/8, 4h, 4w) float32 map
    monkeypatch.setattr(inplace, "_BLOCK_BYTES", 3 * per_prompt)
    out = run()
    assert calls == [3, 4]  # (the last prompt joins the block before it)
    for got, want in zip(out, ref):
        assert torch.equal(got, want)

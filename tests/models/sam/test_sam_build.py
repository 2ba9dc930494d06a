"""SAM builders: Meta's checkpoint names and shapes for ViT-B/L/H (built on the meta device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_util_sam import FIXTURES, require_shared

from masktron.models.sam import build_sam, build_sam_vit_h, sam_model_registry

# (width, depth, heads, global blocks) of Meta's released checkpoints.
VARIANTS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = sam_model_registry[name]()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _vit_b_reference() -> dict[str, tuple[int, ...]]:
    require_shared()
    data = np.load(FIXTURES / "sam_vit_b.shapes.npz")
    return {k: tuple(int(s) for s in data[k]) for k in data.files}


def _expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Meta's ViT-B names and shapes (from the official checkpoint's key list), rewritten for
    the encoder of `name`: block count, width, head width and the per-block position tables."""
    width, depth, heads, global_blocks = VARIANTS[name]
    head_dim = width // heads
    out = {}
    for key, shape in _vit_b_reference().items():
        if not key.startswith("image_encoder."):
            out[key] = shape
            continue
        if key.startswith("image_encoder.blocks."):
            if int(key.split(".")[2]) != 0:
                continue  # regenerated from block 0 below
            for i in range(depth):
                block_key = key.replace("blocks.0.", f"blocks.{i}.", 1)
                leaf = key.split("blocks.0.", 1)[1]
                side = 64 if i in global_blocks else 14
                out[block_key] = {
                    "norm1.weight": (width,),
                    "norm1.bias": (width,),
                    "attn.rel_pos_h": (2 * side - 1, head_dim),
                    "attn.rel_pos_w": (2 * side - 1, head_dim),
                    "attn.qkv.weight": (3 * width, width),
                    "attn.qkv.bias": (3 * width,),
                    "attn.proj.weight": (width, width),
                    "attn.proj.bias": (width,),
                    "norm2.weight": (width,),
                    "norm2.bias": (width,),
                    "mlp.lin1.weight": (4 * width, width),
                    "mlp.lin1.bias": (4 * width,),
                    "mlp.lin2.weight": (width, 4 * width),
                    "mlp.lin2.bias": (width,),
                }[leaf]
            continue
        out[key] = {
            "image_encoder.pos_embed": (1, 64, 64, width),
            "image_encoder.patch_embed.proj.weight": (width, 3, 16, 16),
            "image_encoder.patch_embed.proj.bias": (width,),
            "image_encoder.neck.0.weight": (256, width, 1, 1),
        }.get(key, shape)
    return out


def test_vit_b_matches_official_key_list():
    assert _shapes("vit_b") == _vit_b_reference()


@pytest.mark.parametrize("name", ["vit_l", "vit_h"])
def test_larger_variants_have_meta_names_and_shapes(name):
    ours = _shapes(name)
    want = _expected_shapes(name)
    assert sorted(ours) == sorted(want)
    assert ours == want
    width, depth, _, _ = VARIANTS[name]
    assert sum(k.endswith("attn.qkv.weight") for k in ours) == depth
    assert ours["image_encoder.blocks.0.attn.qkv.weight"] == (3 * width, width)


def test_registry_names_match_meta():
    assert set(sam_model_registry) == {"default", "vit_h", "vit_l", "vit_b"}
    assert sam_model_registry["default"] is build_sam_vit_h is build_sam


def test_builder_returns_eval_model_and_window_layout():
    with torch.device("meta"):
        model = sam_model_registry["vit_b"]()
    assert not model.training
    windows = [b.window_size for b in model.image_encoder.blocks]
    assert windows == [0 if i in (2, 5, 8, 11) else 14 for i in range(12)]
    # pixel statistics are buffers that Meta's checkpoints do not hold
    assert "pixel_mean" not in model.state_dict()

"""Builders of SAM ViT-B/L/H with Meta's architecture constants; `sam_model_registry`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from masktron.models.sam.checkpoint import load_sam_checkpoint
from masktron.models.sam.image_encoder import ImageEncoderViT
from masktron.models.sam.mask_decoder import MaskDecoder
from masktron.models.sam.prompt_encoder import PromptEncoder
from masktron.models.sam.sam import Sam
from masktron.models.sam.transformer import TwoWayTransformer

IMAGE_SIZE = 1024
PATCH_SIZE = 16
PROMPT_EMBED_DIM = 256


def build_sam_model(
    *,
    encoder_embed_dim: int,
    encoder_depth: int,
    encoder_num_heads: int,
    encoder_global_attn_indexes: Sequence[int],
    checkpoint: str | os.PathLike | None = None,
) -> Sam:
    """Build a SAM model in eval mode and optionally load a checkpoint strictly.

    Args:
        encoder_embed_dim: ViT width.
        encoder_depth: ViT blocks.
        encoder_num_heads: ViT attention heads.
        encoder_global_attn_indexes: blocks with global (not windowed) attention.
        checkpoint: path of a Meta `.pth` state dict, or None for random weights.
    """
    grid = IMAGE_SIZE // PATCH_SIZE
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            embed_dim=encoder_embed_dim,
            depth=encoder_depth,
            num_heads=encoder_num_heads,
            mlp_ratio=4.0,
            out_chans=PROMPT_EMBED_DIM,
            qkv_bias=True,
            use_rel_pos=True,
            window_size=14,
            global_attn_indexes=tuple(encoder_global_attn_indexes),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(grid, grid),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=PROMPT_EMBED_DIM,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=PROMPT_EMBED_DIM, num_heads=8, mlp_dim=2048
            ),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )
    sam.eval()
    if checkpoint is not None:
        load_sam_checkpoint(sam, checkpoint)
    return sam


def build_sam_vit_h(checkpoint: str | os.PathLike | None = None) -> Sam:
    """SAM ViT-H (`sam_vit_h_4b8939.pth`)."""
    return build_sam_model(
        encoder_embed_dim=1280,
        encoder_depth=32,
        encoder_num_heads=16,
        encoder_global_attn_indexes=(7, 15, 23, 31),
        checkpoint=checkpoint,
    )


def build_sam_vit_l(checkpoint: str | os.PathLike | None = None) -> Sam:
    """SAM ViT-L (`sam_vit_l_0b3195.pth`)."""
    return build_sam_model(
        encoder_embed_dim=1024,
        encoder_depth=24,
        encoder_num_heads=16,
        encoder_global_attn_indexes=(5, 11, 17, 23),
        checkpoint=checkpoint,
    )


def build_sam_vit_b(checkpoint: str | os.PathLike | None = None) -> Sam:
    """SAM ViT-B (`sam_vit_b_01ec64.pth`)."""
    return build_sam_model(
        encoder_embed_dim=768,
        encoder_depth=12,
        encoder_num_heads=12,
        encoder_global_attn_indexes=(2, 5, 8, 11),
        checkpoint=checkpoint,
    )


# Meta's names: `build_sam` and "default" are ViT-H.
build_sam = build_sam_vit_h
sam_model_registry: dict[str, Callable[..., Sam]] = {
    "default": build_sam_vit_h,
    "vit_h": build_sam_vit_h,
    "vit_l": build_sam_vit_l,
    "vit_b": build_sam_vit_b,
}

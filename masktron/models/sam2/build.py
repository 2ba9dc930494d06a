"""Builders of SAM 2 / SAM 2.1 Hiera tiny, small, base+ and large, without hydra.

The architecture constants are those of Meta's configs (`sam2/configs/sam2{,.1}/*.yaml` in
sam2 1.1.0); `build_sam2` and `build_sam2_video_model` apply the settings of Meta's
`build_sam2` and `build_sam2_video_predictor`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import torch

from masktron.models.sam.prompt_encoder import PromptEncoder
from masktron.models.sam2.checkpoint import (
    VARIANTS,
    Sam2CheckpointError,
    infer_sam2_variant,
    load_sam2_state_dict,
    read_sam2_state_dict,
)
from masktron.models.sam2.hiera import Hiera
from masktron.models.sam2.image_encoder import FpnNeck, ImageEncoder, PositionEmbeddingSine
from masktron.models.sam2.mask_decoder import SAM2MaskDecoder, build_sam2_two_way_transformer
from masktron.models.sam2.memory_attention import (
    MemoryAttention,
    MemoryAttentionLayer,
    RoPEAttention,
)
from masktron.models.sam2.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from masktron.models.sam2.sam2_base import SAM2Base

IMAGE_SIZE = 1024
HIDDEN_DIM = 256
MEM_DIM = 64


@dataclass(frozen=True)
class _Trunk:
    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    bkg: tuple[int, int] = (14, 14)


# Trunks of the released models (SAM 2.0 and 2.1 share them).
_TRUNKS = {
    "t": _Trunk(96, 1, (1, 2, 7, 2), (5, 7, 9), bkg=(7, 7)),
    "s": _Trunk(96, 1, (1, 2, 11, 2), (7, 10, 13), bkg=(7, 7)),
    "b+": _Trunk(112, 2, (2, 3, 16, 3), (12, 16, 20)),
    "l": _Trunk(144, 2, (2, 6, 36, 4), (23, 33, 43), window_spec=(8, 4, 16, 8), bkg=(7, 7)),
}


def _build_image_encoder(trunk: _Trunk) -> ImageEncoder:
    hiera = Hiera(
        embed_dim=trunk.embed_dim,
        num_heads=trunk.num_heads,
        stages=trunk.stages,
        global_att_blocks=trunk.global_att_blocks,
        window_spec=trunk.window_spec,
        window_pos_embed_bkg_spatial_size=trunk.bkg,
    )
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=HIDDEN_DIM),
        d_model=HIDDEN_DIM,
        backbone_channel_list=hiera.channel_list,
        fpn_top_down_levels=(2, 3),  # levels 0 and 1 (strides 4, 8) are lateral only
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=hiera, neck=neck, scalp=1)


def _build_memory_attention() -> MemoryAttention:
    def layer() -> MemoryAttentionLayer:
        return MemoryAttentionLayer(
            self_attention=RoPEAttention(embedding_dim=HIDDEN_DIM, num_heads=1),
            cross_attention=RoPEAttention(
                embedding_dim=HIDDEN_DIM, num_heads=1, kv_in_dim=MEM_DIM, rope_k_repeat=True
            ),
            d_model=HIDDEN_DIM,
            dim_feedforward=2048,
            pos_enc_at_attn=False,
            pos_enc_at_cross_attn_queries=False,
            pos_enc_at_cross_attn_keys=True,
        )

    return MemoryAttention(
        layers=[layer() for _ in range(4)], d_model=HIDDEN_DIM, pos_enc_at_input=True
    )


def _build_memory_encoder() -> MemoryEncoder:
    return MemoryEncoder(
        mask_downsampler=MaskDownSampler(
            embed_dim=HIDDEN_DIM, kernel_size=3, stride=2, padding=1, total_stride=16
        ),
        fuser=Fuser(layers=[CXBlock(dim=HIDDEN_DIM) for _ in range(2)]),
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEM_DIM),
        in_dim=HIDDEN_DIM,
        out_dim=MEM_DIM,
    )


def build_sam2_model(
    variant: str,
    *,
    apply_postprocessing: bool = True,
    video: bool = False,
    checkpoint: str | os.PathLike | None = None,
    image_size: int = IMAGE_SIZE,
) -> SAM2Base:
    """Build a SAM 2 model in eval mode on CPU, optionally loading a checkpoint strictly.

    Args:
        variant: `sam2.1_hiera_{t,s,b+,l}` or `sam2_hiera_{t,s,b+,l}`.
        apply_postprocessing: single-mask requests fall back to the best multi-mask output when
            unstable (Meta's `apply_postprocessing`); for video also binarised click masks in
            memories and hole filling of 8 pixels.
        video: the settings of Meta's `build_sam2_video_predictor`.
        checkpoint: path or URL of a Meta `.pt` file.
        image_size: input side in pixels, a multiple of 32 (Meta's `model.image_size`; the
            released models use 1024, smaller sizes run the same weights at less cost).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown SAM 2 variant {variant!r}; expected one of {VARIANTS}")
    if image_size <= 0 or image_size % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
    sam21 = variant.startswith("sam2.1")
    decoder = SAM2MaskDecoder(
        transformer_dim=HIDDEN_DIM,
        transformer=build_sam2_two_way_transformer(),
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        dynamic_multimask_via_stability=apply_postprocessing,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
    )
    grid = image_size // 16
    model = SAM2Base(
        image_encoder=_build_image_encoder(_TRUNKS[variant.rsplit("_", 1)[1]]),
        memory_attention=_build_memory_attention(),
        memory_encoder=_build_memory_encoder(),
        sam_prompt_encoder=PromptEncoder(
            embed_dim=HIDDEN_DIM,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        sam_mask_decoder=decoder,
        num_maskmem=7,
        image_size=image_size,
        sigmoid_scale_for_mem_enc=20.0,
        sigmoid_bias_for_mem_enc=-10.0,
        use_mask_input_as_output_without_sam=True,
        directly_add_no_mem_embed=True,
        no_obj_embed_spatial=sam21,
        use_high_res_features_in_sam=True,
        multimask_output_in_sam=True,
        iou_prediction_use_sigmoid=True,
        use_obj_ptrs_in_encoder=True,
        add_tpos_enc_to_obj_ptrs=sam21,
        proj_tpos_enc_in_obj_ptrs=sam21,
        use_signed_tpos_enc_to_obj_ptrs=sam21,
        only_obj_ptrs_in_the_past_for_eval=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        fixed_no_obj_ptr=True,
        multimask_output_for_tracking=True,
        use_multimask_token_for_obj_ptr=True,
        multimask_min_pt_num=0,
        multimask_max_pt_num=1,
        use_mlp_for_obj_ptr_proj=True,
        binarize_mask_from_pts_for_mem_enc=video and apply_postprocessing,
        fill_hole_area=8 if video and apply_postprocessing else 0,
    )
    if checkpoint is not None:
        load_sam2_state_dict(model, read_sam2_state_dict(checkpoint), checkpoint)
    return model.eval()


def _build_loaded(
    variant: str,
    state_dict: dict[str, torch.Tensor] | None,
    path: str | os.PathLike | None,
    *,
    apply_postprocessing: bool = True,
    video: bool = False,
) -> SAM2Base:
    """`build_sam2_model` with a state dict already read from `path`.

    With weights, the model is built on the meta device and the file's tensors are assigned, so
    no time goes into a random initialisation that the checkpoint overwrites.
    """
    if state_dict is None or path is None:
        return build_sam2_model(variant, apply_postprocessing=apply_postprocessing, video=video)
    with torch.device("meta"):
        model = build_sam2_model(variant, apply_postprocessing=apply_postprocessing, video=video)
    load_sam2_state_dict(model, state_dict, path, assign=True)
    return model


def variant_from_config(config_file: str) -> str:
    """Meta's config name (`configs/sam2.1/sam2.1_hiera_t.yaml`, `sam2_hiera_l.yaml`, ...) or a
    variant name -> the variant."""
    name = PurePosixPath(str(config_file).replace("\\", "/")).name
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if name not in VARIANTS:
        raise ValueError(
            f"unknown SAM 2 config {config_file!r}; expected one of "
            + ", ".join(f"configs/{v.split('_hiera_')[0]}/{v}.yaml" for v in VARIANTS)
        )
    return name


def _resolve_variant(
    config_file: str | None, ckpt_path: str | os.PathLike | None, variant: str | None
) -> tuple[str, dict[str, torch.Tensor] | None]:
    """The variant to build (from the argument, the config name or the file) and the state dict."""
    name = variant or config_file
    chosen = variant_from_config(name) if name else None
    state_dict = read_sam2_state_dict(ckpt_path) if ckpt_path is not None else None
    if chosen is None:
        if state_dict is None:
            raise ValueError("build_sam2 needs a config_file, a variant or a ckpt_path")
        chosen = infer_sam2_variant(state_dict)
        if chosen is None:
            raise Sam2CheckpointError(
                f"{os.fspath(ckpt_path or '')}: not a SAM 2 checkpoint (no Hiera trunk of a "
                f"released size); pass config_file to name the variant"
            )
    return chosen, state_dict


def _build(
    config_file: str | None,
    ckpt_path: str | os.PathLike | None,
    device: str | torch.device,
    mode: str,
    apply_postprocessing: bool,
    variant: str | None,
    hydra_overrides_extra: Sequence[str],
    video: bool,
) -> SAM2Base:
    if hydra_overrides_extra:
        raise ValueError(
            "masktron builds SAM 2 without hydra: hydra_overrides_extra is not supported; set "
            "the model's attributes after building instead"
        )
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    chosen, state_dict = _resolve_variant(config_file, ckpt_path, variant)
    model = _build_loaded(
        chosen, state_dict, ckpt_path, apply_postprocessing=apply_postprocessing, video=video
    )
    model = model.to(device)
    return model.eval() if mode == "eval" else model.train()


def build_sam2(
    config_file: str | None = None,
    ckpt_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    *,
    variant: str | None = None,
    hydra_overrides_extra: Sequence[str] = (),
) -> SAM2Base:
    """SAM 2 for images, as Meta's `build_sam2`.

    Args:
        config_file: Meta's config name (`configs/sam2.1/sam2.1_hiera_t.yaml`,
            `sam2.1_hiera_t.yaml`, `sam2_hiera_l.yaml`, ...), or None to read the variant from
            the checkpoint's tensor shapes.
        ckpt_path: Meta's `.pt` file (`{"model": state_dict}`), loaded strictly and safely.
        device: where the model goes.
        mode: "eval" or "train".
        apply_postprocessing: dynamic multi-mask fallback for unstable single masks.
        variant: the variant name instead of a config name.
        hydra_overrides_extra: not supported (an error if given); kept for Meta's signature.
    """
    return _build(
        config_file, ckpt_path, device, mode, apply_postprocessing, variant,
        hydra_overrides_extra, video=False,
    )  # fmt: skip


def build_sam2_video_model(
    config_file: str | None = None,
    ckpt_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    mode: str = "eval",
    apply_postprocessing: bool = True,
    *,
    variant: str | None = None,
    hydra_overrides_extra: Sequence[str] = (),
) -> SAM2Base:
    """SAM 2 with the settings of Meta's `build_sam2_video_predictor` (arguments as
    `build_sam2`): with post-processing, click masks enter memories binarised and holes up to
    8 pixels are filled (`fill_hole_area`)."""
    return _build(
        config_file, ckpt_path, device, mode, apply_postprocessing, variant,
        hydra_overrides_extra, video=True,
    )  # fmt: skip


def _build_sized(size: str, checkpoint: str | os.PathLike | None) -> SAM2Base:
    """An image model of `size`: SAM 2.1 unless the checkpoint is a SAM 2.0 file."""
    state_dict = read_sam2_state_dict(checkpoint) if checkpoint is not None else None
    found = infer_sam2_variant(state_dict) if state_dict is not None else None
    version = found.split("_hiera_")[0] if found else "sam2.1"
    return _build_loaded(f"{version}_hiera_{size}", state_dict, checkpoint)


def build_sam2_hiera_tiny(checkpoint: str | os.PathLike | None = None) -> SAM2Base:
    """SAM 2.1 (or 2.0, by the checkpoint) Hiera-T for images (`sam2.1_hiera_tiny.pt`)."""
    return _build_sized("t", checkpoint)


def build_sam2_hiera_small(checkpoint: str | os.PathLike | None = None) -> SAM2Base:
    """SAM 2.1 (or 2.0, by the checkpoint) Hiera-S for images (`sam2.1_hiera_small.pt`)."""
    return _build_sized("s", checkpoint)


def build_sam2_hiera_base_plus(checkpoint: str | os.PathLike | None = None) -> SAM2Base:
    """SAM 2.1 (or 2.0, by the checkpoint) Hiera-B+ for images (`sam2.1_hiera_base_plus.pt`)."""
    return _build_sized("b+", checkpoint)


def build_sam2_hiera_large(checkpoint: str | os.PathLike | None = None) -> SAM2Base:
    """SAM 2.1 (or 2.0, by the checkpoint) Hiera-L for images (`sam2.1_hiera_large.pt`)."""
    return _build_sized("l", checkpoint)

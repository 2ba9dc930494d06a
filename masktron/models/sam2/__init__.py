"""Segment Anything 2 (Ravi et al., https://arxiv.org/abs/2408.00714) with Meta's checkpoints."""

from masktron.models.sam2.build import (
    build_sam2,
    build_sam2_hiera_base_plus,
    build_sam2_hiera_large,
    build_sam2_hiera_small,
    build_sam2_hiera_tiny,
    build_sam2_model,
    build_sam2_video_model,
    variant_from_config,
)
from masktron.models.sam2.checkpoint import (
    VARIANTS,
    Sam2CheckpointError,
    infer_sam2_variant,
    load_sam2_state_dict,
    read_sam2_state_dict,
)
from masktron.models.sam2.hiera import Hiera
from masktron.models.sam2.image_encoder import FpnNeck, ImageEncoder, PositionEmbeddingSine
from masktron.models.sam2.mask_decoder import SAM2MaskDecoder
from masktron.models.sam2.memory_attention import MemoryAttention, RoPEAttention
from masktron.models.sam2.memory_encoder import MemoryEncoder
from masktron.models.sam2.precision import set_sam2_precision
from masktron.models.sam2.sam2_base import NO_OBJ_SCORE, SAM2Base

__all__ = [
    "NO_OBJ_SCORE",
    "VARIANTS",
    "FpnNeck",
    "Hiera",
    "ImageEncoder",
    "MemoryAttention",
    "MemoryEncoder",
    "PositionEmbeddingSine",
    "RoPEAttention",
    "SAM2Base",
    "SAM2MaskDecoder",
    "Sam2CheckpointError",
    "build_sam2",
    "build_sam2_hiera_base_plus",
    "build_sam2_hiera_large",
    "build_sam2_hiera_small",
    "build_sam2_hiera_tiny",
    "build_sam2_model",
    "build_sam2_video_model",
    "infer_sam2_variant",
    "load_sam2_state_dict",
    "read_sam2_state_dict",
    "set_sam2_precision",
    "variant_from_config",
]

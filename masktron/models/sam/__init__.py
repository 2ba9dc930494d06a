"""Segment Anything (Kirillov et al., https://arxiv.org/abs/2304.02643) with Meta's checkpoints."""

from masktron.models.sam.build import (
    build_sam,
    build_sam_model,
    build_sam_vit_b,
    build_sam_vit_h,
    build_sam_vit_l,
    sam_model_registry,
)
from masktron.models.sam.checkpoint import (
    SamCheckpointError,
    infer_sam_variant,
    load_sam_checkpoint,
    load_sam_state_dict,
    read_state_dict,
)
from masktron.models.sam.image_encoder import ImageEncoderViT
from masktron.models.sam.mask_decoder import MaskDecoder
from masktron.models.sam.precision import set_sam_precision
from masktron.models.sam.prompt_encoder import PromptEncoder
from masktron.models.sam.sam import Sam
from masktron.models.sam.transformer import TwoWayTransformer
from masktron.models.sam.transforms import ResizeLongestSide

__all__ = [
    "ImageEncoderViT",
    "MaskDecoder",
    "PromptEncoder",
    "ResizeLongestSide",
    "Sam",
    "SamCheckpointError",
    "TwoWayTransformer",
    "build_sam",
    "build_sam_model",
    "build_sam_vit_b",
    "build_sam_vit_h",
    "build_sam_vit_l",
    "infer_sam_variant",
    "load_sam_checkpoint",
    "load_sam_state_dict",
    "read_state_dict",
    "sam_model_registry",
    "set_sam_precision",
]

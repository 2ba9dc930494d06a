"""`SAM2Base`: SAM 2's image encoder, SAM heads and memory, stepped one frame at a time.

Attribute names, method signatures, returned dict keys and tensor layouts are those of Meta's
`sam2.modeling.sam2_base.SAM2Base`, so predictors (and users' code) written against it work
unchanged. Flattened features are sequence-first: (H*W, B, C).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from masktron.models.sam.common import MLP
from masktron.models.sam.prompt_encoder import PromptEncoder
from masktron.models.sam2.image_encoder import ImageEncoder
from masktron.models.sam2.mask_decoder import SAM2MaskDecoder
from masktron.models.sam2.memory_attention import MemoryAttention
from masktron.models.sam2.memory_encoder import MemoryEncoder
from masktron.models.sam2.sam2_memory import SAM2MemoryMixin

# Mask logit of frames where the object is predicted absent.
NO_OBJ_SCORE = -1024.0

SamOutputs = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]


class SAM2Base(SAM2MemoryMixin, nn.Module):
    """Segment Anything 2 (Ravi et al., https://arxiv.org/abs/2408.00714).

    Args:
        image_encoder: Hiera trunk + FPN neck.
        memory_attention: conditions a frame's features on the memory bank.
        memory_encoder: encodes a frame and its mask into a memory.
        sam_prompt_encoder: SAM's prompt encoder (256 wide, 64x64 grid, 1024 input).
        sam_mask_decoder: SAM 2's mask decoder.
        The remaining arguments are Meta's `SAM2Base` options, with its defaults; builders set
        the values of the released configs (see `masktron.models.sam2.build`).
    """

    # "fp32" unless `masktron.models.sam2.precision.set_sam2_precision` converted the model.
    inference_precision: str = "fp32"

    def __init__(
        self,
        *,
        image_encoder: ImageEncoder,
        memory_attention: MemoryAttention,
        memory_encoder: MemoryEncoder,
        sam_prompt_encoder: PromptEncoder,
        sam_mask_decoder: SAM2MaskDecoder,
        num_maskmem: int = 7,
        image_size: int = 512,
        backbone_stride: int = 16,
        sigmoid_scale_for_mem_enc: float = 1.0,
        sigmoid_bias_for_mem_enc: float = 0.0,
        binarize_mask_from_pts_for_mem_enc: bool = False,
        use_mask_input_as_output_without_sam: bool = False,
        max_cond_frames_in_attn: int = -1,
        directly_add_no_mem_embed: bool = False,
        use_high_res_features_in_sam: bool = False,
        multimask_output_in_sam: bool = False,
        multimask_min_pt_num: int = 1,
        multimask_max_pt_num: int = 1,
        multimask_output_for_tracking: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        memory_temporal_stride_for_eval: int = 1,
        non_overlap_masks_for_mem_enc: bool = False,
        use_obj_ptrs_in_encoder: bool = False,
        max_obj_ptrs_in_encoder: int = 16,
        add_tpos_enc_to_obj_ptrs: bool = True,
        proj_tpos_enc_in_obj_ptrs: bool = False,
        use_signed_tpos_enc_to_obj_ptrs: bool = False,
        only_obj_ptrs_in_the_past_for_eval: bool = False,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        fixed_no_obj_ptr: bool = False,
        soft_no_obj_ptr: bool = False,
        use_mlp_for_obj_ptr_proj: bool = False,
        no_obj_embed_spatial: bool = False,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
    ) -> None:
        super().__init__()
        if proj_tpos_enc_in_obj_ptrs and not add_tpos_enc_to_obj_ptrs:
            raise ValueError("proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs")
        if fixed_no_obj_ptr and not (pred_obj_scores and use_obj_ptrs_in_encoder):
            raise ValueError("fixed_no_obj_ptr needs pred_obj_scores and use_obj_ptrs_in_encoder")
        self.image_encoder = image_encoder
        self.use_high_res_features_in_sam = use_high_res_features_in_sam
        self.num_feature_levels = 3 if use_high_res_features_in_sam else 1
        self.use_obj_ptrs_in_encoder = use_obj_ptrs_in_encoder
        self.max_obj_ptrs_in_encoder = max_obj_ptrs_in_encoder
        if use_obj_ptrs_in_encoder:
            # Maps an image-size mask input to a stride-4 SAM logit map, to get a pointer from it.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.add_tpos_enc_to_obj_ptrs = add_tpos_enc_to_obj_ptrs
        self.proj_tpos_enc_in_obj_ptrs = proj_tpos_enc_in_obj_ptrs
        self.use_signed_tpos_enc_to_obj_ptrs = use_signed_tpos_enc_to_obj_ptrs
        self.only_obj_ptrs_in_the_past_for_eval = only_obj_ptrs_in_the_past_for_eval

        self.memory_attention = memory_attention
        self.hidden_dim = image_encoder.neck.d_model
        self.memory_encoder = memory_encoder
        out_proj = memory_encoder.out_proj
        self.mem_dim = out_proj.weight.shape[0] if isinstance(out_proj, nn.Conv2d) else 256
        self.num_maskmem = num_maskmem
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, self.mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(p, std=0.02)
        self.directly_add_no_mem_embed = directly_add_no_mem_embed
        self.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc
        self.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc
        self.non_overlap_masks_for_mem_enc = non_overlap_masks_for_mem_enc
        self.memory_temporal_stride_for_eval = memory_temporal_stride_for_eval
        self.use_mask_input_as_output_without_sam = use_mask_input_as_output_without_sam
        self.multimask_output_in_sam = multimask_output_in_sam
        self.multimask_min_pt_num = multimask_min_pt_num
        self.multimask_max_pt_num = multimask_max_pt_num
        self.multimask_output_for_tracking = multimask_output_for_tracking
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.iou_prediction_use_sigmoid = iou_prediction_use_sigmoid

        self.image_size = image_size
        self.backbone_stride = backbone_stride
        self.pred_obj_scores = pred_obj_scores
        self.pred_obj_scores_mlp = pred_obj_scores_mlp
        self.fixed_no_obj_ptr = fixed_no_obj_ptr
        self.soft_no_obj_ptr = soft_no_obj_ptr
        if pred_obj_scores and use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, self.hidden_dim))
            nn.init.trunc_normal_(self.no_obj_ptr, std=0.02)
        self.use_mlp_for_obj_ptr_proj = use_mlp_for_obj_ptr_proj
        self.no_obj_embed_spatial: nn.Parameter | None = None
        if no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, self.mem_dim))
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

        self.sam_prompt_embed_dim = self.hidden_dim
        self.sam_image_embedding_size = image_size // backbone_stride
        self.sam_prompt_encoder = sam_prompt_encoder
        self.sam_mask_decoder = sam_mask_decoder
        self.obj_ptr_proj: nn.Module = nn.Identity()
        if use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = (
                MLP(
                    input_dim=self.hidden_dim,
                    hidden_dim=self.hidden_dim,
                    output_dim=self.hidden_dim,
                    num_layers=3,
                )
                if use_mlp_for_obj_ptr_proj
                else nn.Linear(self.hidden_dim, self.hidden_dim)
            )
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(self.hidden_dim, self.mem_dim) if proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        self.max_cond_frames_in_attn = max_cond_frames_in_attn
        # Settings of Meta's video predictor (read by masktron's SAM2VideoPredictor).
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    def forward_image(self, img_batch: torch.Tensor) -> dict[str, Any]:
        """(B, 3, image_size, image_size) normalised images -> backbone dict.

        `backbone_fpn` holds the stride 4, 8, 16 maps; with high-resolution features the
        stride-4 and stride-8 maps are already projected by the decoder's `conv_s0` / `conv_s1`
        (to 32 and 64 channels), so prompts reuse them without re-running the convolutions.
        """
        backbone_out = self.image_encoder(img_batch)
        if self.use_high_res_features_in_sam:
            fpn = backbone_out["backbone_fpn"]
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
        return backbone_out

    def _prepare_backbone_features(
        self, backbone_out: dict[str, Any]
    ) -> tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]:
        """Flatten the last `num_feature_levels` maps and codes: (B, C, H, W) -> (H*W, B, C).

        Returns:
            (a shallow copy of backbone_out, features, position codes, (H, W) per level).
        """
        backbone_out = backbone_out.copy()
        fpn, pos = backbone_out["backbone_fpn"], backbone_out["vision_pos_enc"]
        if len(fpn) != len(pos) or len(fpn) < self.num_feature_levels:
            raise ValueError(f"backbone_out has {len(fpn)} maps and {len(pos)} codes")
        maps = fpn[-self.num_feature_levels :]
        codes = pos[-self.num_feature_levels :]
        feat_sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in codes]
        vision_feats = [x.flatten(2).permute(2, 0, 1) for x in maps]  # (B, C, HW) -> (HW, B, C)
        vision_pos = [x.flatten(2).permute(2, 0, 1) for x in codes]
        return backbone_out, vision_feats, vision_pos, feat_sizes

    def _forward_sam_heads(
        self,
        backbone_features: torch.Tensor,
        point_inputs: dict[str, torch.Tensor] | None = None,
        mask_inputs: torch.Tensor | None = None,
        high_res_features: list[torch.Tensor] | None = None,
        multimask_output: bool = False,
    ) -> SamOutputs:
        """Prompt encoder + mask decoder on (B, C, h, w) features (h = image_size / 16).

        Args:
            backbone_features: (B, 256, h, w) (memory-conditioned) stride-16 features.
            point_inputs: `point_coords` (B, P, 2) float xy in the image_size frame and
                `point_labels` (B, P) int32 (1 positive, 0 negative, -1 padding, 2/3 box corners).
            mask_inputs: (B, 1, H', W') mask logits, resized to the decoder's 4h x 4w if needed.
            high_res_features: the projected stride-4 and stride-8 maps.
            multimask_output: 3 masks per prompt and pick the best by predicted IoU.

        Returns:
            low_res_multimasks (B, M, 4h, 4w), high_res_multimasks (B, M, image_size,
            image_size), ious (B, M), low_res_masks (B, 1, 4h, 4w) and high_res_masks
            (B, 1, image_size, image_size) of the best mask, obj_ptr (B, C), object_score_logits
            (B, 1); M = 3 or 1. Absent objects' masks are NO_OBJ_SCORE.
        """
        b = backbone_features.shape[0]
        device = backbone_features.device
        size = self.sam_image_embedding_size
        if tuple(backbone_features.shape[1:]) != (self.sam_prompt_embed_dim, size, size):
            raise ValueError(
                f"backbone_features must be (B, {self.sam_prompt_embed_dim}, {size}, {size}), "
                f"got {tuple(backbone_features.shape)}"
            )
        if point_inputs is not None:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
        else:  # no points: one padding point
            coords = torch.zeros(b, 1, 2, device=device)
            labels = -torch.ones(b, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_inputs is not None:
            target = tuple(self.sam_prompt_encoder.mask_input_size)
            mask_prompt = mask_inputs
            if tuple(mask_inputs.shape[-2:]) != target:
                mask_prompt = F.interpolate(
                    mask_inputs.float(), size=target, mode="bilinear", align_corners=False,
                    antialias=True,
                )  # fmt: skip
        sparse, dense = self.sam_prompt_encoder(
            points=(coords, labels), boxes=None, masks=mask_prompt
        )
        low_res_multimasks, ious, sam_tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        is_obj_appearing = object_score_logits > 0  # (B, 1)
        if self.pred_obj_scores:
            # Memories use a hard choice between object and no object, as the output masks do.
            low_res_multimasks = torch.where(
                is_obj_appearing[:, None, None], low_res_multimasks, NO_OBJ_SCORE
            )
        low_res_multimasks = low_res_multimasks.float()
        high_res_multimasks = F.interpolate(
            low_res_multimasks,
            size=(self.image_size, self.image_size),
            mode="bilinear",
            align_corners=False,
        )
        sam_token = sam_tokens[:, 0]
        if multimask_output:
            best = ious.argmax(dim=-1)
            rows = torch.arange(b, device=device)
            low_res_masks = low_res_multimasks[rows, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[rows, best].unsqueeze(1)
            if sam_tokens.shape[1] > 1:
                sam_token = sam_tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.obj_ptr_proj(sam_token)
        if self.pred_obj_scores:
            appearing = (
                object_score_logits.sigmoid() if self.soft_no_obj_ptr else is_obj_appearing.float()
            )
            obj_ptr = self._mix_no_obj_ptr(obj_ptr, appearing)
        return (
            low_res_multimasks,
            high_res_multimasks,
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        )

    def _mix_no_obj_ptr(self, obj_ptr: torch.Tensor, appearing: torch.Tensor) -> torch.Tensor:
        """Blend the learned no-object pointer in where the object is absent (appearing (B, 1))."""
        if self.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        return obj_ptr + (1 - appearing) * self.no_obj_ptr

    def _use_mask_as_output(
        self,
        backbone_features: torch.Tensor,
        high_res_features: list[torch.Tensor] | None,
        mask_inputs: torch.Tensor,
    ) -> SamOutputs:
        """Take a (B, 1, H, W) binary mask input as the output (logits +-10), without SAM.

        The object pointer still comes from the decoder, prompted with the downsampled mask;
        presence is read from the mask itself. Outputs as `_forward_sam_heads`.
        """
        out_scale, out_bias = 20.0, -10.0  # sigmoid(-10) ~ 4.5e-5
        mask = mask_inputs.float()
        high_res_masks = mask * out_scale + out_bias
        low_res_masks = F.interpolate(
            high_res_masks,
            size=(high_res_masks.shape[-2] // 4, high_res_masks.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = mask_inputs.new_ones(mask_inputs.shape[0], 1).float()
        if not self.use_obj_ptrs_in_encoder:
            obj_ptr = torch.zeros(mask_inputs.shape[0], self.hidden_dim, device=mask_inputs.device)
        else:
            obj_ptr = self._forward_sam_heads(
                backbone_features=backbone_features,
                mask_inputs=self.mask_downsample(mask),
                high_res_features=high_res_features,
            )[5]
        appearing = (mask_inputs.flatten(1).float() > 0).any(dim=1, keepdim=True).float()
        object_score_logits = out_scale * appearing + out_bias
        if self.pred_obj_scores:
            obj_ptr = self._mix_no_obj_ptr(obj_ptr, appearing)
        return (
            low_res_masks,
            high_res_masks,
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        )

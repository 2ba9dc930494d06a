"""The tracking half of `SAM2Base`: memory-conditioned features, one tracking step, new memories.

A mixin so that `sam2_base.py` stays readable; it uses `SAM2Base`'s modules and options (declared
below for type checking) and keeps Meta's method names and signatures.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from masktron.models.sam2.image_encoder import get_1d_sine_pe
from masktron.models.sam2.memory_bank import (
    memory_frame_indices,
    object_pointer_sources,
    select_closest_cond_frames,
)


class SAM2MemoryMixin:
    """Tracking methods of `SAM2Base` (see there for the attributes)."""

    training: bool
    hidden_dim: int
    mem_dim: int
    num_maskmem: int
    maskmem_tpos_enc: torch.Tensor
    no_mem_embed: torch.Tensor
    no_mem_pos_enc: torch.Tensor
    no_obj_embed_spatial: torch.Tensor | None
    directly_add_no_mem_embed: bool
    max_cond_frames_in_attn: int
    memory_temporal_stride_for_eval: int
    use_obj_ptrs_in_encoder: bool
    max_obj_ptrs_in_encoder: int
    only_obj_ptrs_in_the_past_for_eval: bool
    use_signed_tpos_enc_to_obj_ptrs: bool
    add_tpos_enc_to_obj_ptrs: bool
    proj_tpos_enc_in_obj_ptrs: bool
    obj_ptr_tpos_proj: nn.Module
    memory_attention: nn.Module
    memory_encoder: nn.Module
    non_overlap_masks_for_mem_enc: bool
    binarize_mask_from_pts_for_mem_enc: bool
    sigmoid_scale_for_mem_enc: float
    sigmoid_bias_for_mem_enc: float
    use_mask_input_as_output_without_sam: bool
    multimask_output_in_sam: bool
    multimask_output_for_tracking: bool
    multimask_min_pt_num: int
    multimask_max_pt_num: int
    _forward_sam_heads: Any
    _use_mask_as_output: Any

    def _prepare_memory_conditioned_features(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        output_dict: dict[str, dict[int, dict[str, Any]]],
        num_frames: int,
        track_in_reverse: bool = False,
    ) -> torch.Tensor:
        """The current frame's stride-16 features conditioned on the memory bank: (B, C, H, W)."""
        b = current_vision_feats[-1].shape[1]
        c = self.hidden_dim
        h, w = feat_sizes[-1]
        device = current_vision_feats[-1].device
        if self.num_maskmem == 0:  # memory disabled: SAM on single images
            return current_vision_feats[-1].permute(1, 2, 0).reshape(b, c, h, w)
        num_obj_ptr_tokens = 0
        if is_init_cond_frame:
            if self.directly_add_no_mem_embed:
                feat = current_vision_feats[-1] + self.no_mem_embed
                return feat.permute(1, 2, 0).reshape(b, c, h, w)  # (HW, B, C) -> (B, C, H, W)
            # a dummy memory token so that the transformer has something to attend to
            memories = [self.no_mem_embed.expand(1, b, self.mem_dim)]
            memory_codes = [self.no_mem_pos_enc.expand(1, b, self.mem_dim)]
        else:
            memories, memory_codes, num_obj_ptr_tokens = self._gather_memories(
                frame_idx, b, device, output_dict, num_frames, track_in_reverse
            )
        feat = self.memory_attention(
            curr=current_vision_feats,
            curr_pos=current_vision_pos_embeds,
            memory=torch.cat(memories, dim=0),
            memory_pos=torch.cat(memory_codes, dim=0),
            num_obj_ptr_tokens=num_obj_ptr_tokens,
        )
        return feat.permute(1, 2, 0).reshape(b, c, h, w)  # (HW, B, C) -> (B, C, H, W)

    def _gather_memories(
        self,
        frame_idx: int,
        b: int,
        device: torch.device,
        output_dict: dict[str, dict[int, dict[str, Any]]],
        num_frames: int,
        track_in_reverse: bool,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        """Spatial memories then object-pointer tokens, each (M_i, B, mem_dim), with their codes,
        and the number of pointer tokens."""
        cond = output_dict["cond_frame_outputs"]
        if not cond:
            raise ValueError(f"frame {frame_idx}: tracking needs at least one prompted frame")
        selected, unselected = select_closest_cond_frames(
            frame_idx, cond, self.max_cond_frames_in_attn
        )
        # Prompted frames all have temporal slot 0; tracked ones slots 1 .. num_maskmem - 1.
        slots: list[tuple[int, dict[str, Any] | None]] = [(0, out) for out in selected.values()]
        stride = 1 if self.training else self.memory_temporal_stride_for_eval
        for t_pos, prev_idx in memory_frame_indices(
            frame_idx, self.num_maskmem, stride, track_in_reverse
        ):
            prev = output_dict["non_cond_frame_outputs"].get(prev_idx)
            slots.append((t_pos, prev if prev is not None else unselected.get(prev_idx)))
        memories, codes = [], []
        for t_pos, prev in slots:
            if prev is None:
                continue
            feats = prev["maskmem_features"].to(device, non_blocking=True)
            memories.append(feats.flatten(2).permute(2, 0, 1))  # (B, C, H, W) -> (HW, B, C)
            code = prev["maskmem_pos_enc"][-1].to(device).flatten(2).permute(2, 0, 1)
            codes.append(code + self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1])
        if not self.use_obj_ptrs_in_encoder:
            return memories, codes, 0
        max_ptrs = min(num_frames, self.max_obj_ptrs_in_encoder)
        pairs = object_pointer_sources(
            frame_idx,
            selected,
            unselected,
            output_dict["non_cond_frame_outputs"],
            max_ptrs=max_ptrs,
            num_frames=num_frames,
            track_in_reverse=track_in_reverse,
            only_past=not self.training and self.only_obj_ptrs_in_the_past_for_eval,
            signed=self.use_signed_tpos_enc_to_obj_ptrs,
        )
        if not pairs:
            return memories, codes, 0
        offsets, ptrs = zip(*pairs)
        obj_ptrs = torch.stack(ptrs, dim=0)  # (P, B, C)
        c = self.hidden_dim
        if self.add_tpos_enc_to_obj_ptrs:
            tpos_dim = c if self.proj_tpos_enc_in_obj_ptrs else self.mem_dim
            rel = torch.tensor(offsets, device=device) / (max_ptrs - 1)
            obj_pos = self.obj_ptr_tpos_proj(get_1d_sine_pe(rel, dim=tpos_dim))
            obj_pos = obj_pos.unsqueeze(1).expand(-1, b, self.mem_dim)  # (P, B, mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(offsets), b, self.mem_dim)
        if self.mem_dim < c:
            # each C-wide pointer becomes C / mem_dim tokens:
            # (P, B, C) -> (P, B, k, mem_dim) -> (P, k, B, mem_dim) -> (P*k, B, mem_dim)
            split = c // self.mem_dim
            obj_ptrs = obj_ptrs.reshape(-1, b, split, self.mem_dim).permute(0, 2, 1, 3)
            obj_ptrs = obj_ptrs.flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        memories.append(obj_ptrs)
        codes.append(obj_pos)
        return memories, codes, obj_ptrs.shape[0]

    def _encode_new_memory(
        self,
        current_vision_feats: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        pred_masks_high_res: torch.Tensor,
        object_score_logits: torch.Tensor,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Memory of the current frame from its features and (B, 1, H, W) mask logits.

        Returns:
            maskmem_features (B, mem_dim, h, w) and maskmem_pos_enc, a list of one
            (B, mem_dim, h, w) code map.
        """
        b = current_vision_feats[-1].shape[1]
        h, w = feat_sizes[-1]
        # (HW, B, C) -> (B, C, H, W)
        pix_feat = current_vision_feats[-1].permute(1, 2, 0).reshape(b, self.hidden_dim, h, w)
        masks = pred_masks_high_res
        if self.non_overlap_masks_for_mem_enc and not self.training:
            masks = self._apply_non_overlapping_constraints(masks)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not self.training:
            mask_for_mem = (masks > 0).float()  # memories see exactly the mask the user saw
        else:
            mask_for_mem = torch.sigmoid(masks)
        if self.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem = mask_for_mem * self.sigmoid_scale_for_mem_enc
        if self.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem = mask_for_mem + self.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        maskmem_features = out["vision_features"]
        if self.no_obj_embed_spatial is not None:
            # frames where the object is absent (occluded) are marked in their memory
            absent = 1 - (object_score_logits > 0).float()  # (B, 1)
            maskmem_features = (
                maskmem_features
                + absent[..., None, None] * (self.no_obj_embed_spatial[..., None, None])
            )
        return maskmem_features, out["vision_pos_enc"]

    def _track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        point_inputs: dict[str, torch.Tensor] | None,
        mask_inputs: torch.Tensor | None,
        output_dict: dict[str, dict[int, dict[str, Any]]],
        num_frames: int,
        track_in_reverse: bool,
        prev_sam_mask_logits: torch.Tensor | None,
    ) -> tuple[dict[str, Any], tuple[torch.Tensor, ...], list[torch.Tensor] | None, torch.Tensor]:
        """SAM heads on the memory-conditioned features (or the mask input taken as output).

        Returns:
            (current_out with the inputs, SAM outputs, high-res features, pixel features).
        """
        current_out: dict[str, Any] = {"point_inputs": point_inputs, "mask_inputs": mask_inputs}
        high_res_features = None
        if len(current_vision_feats) > 1:
            # (HW, B, C) -> (B, C, H, W) for the stride-4 and stride-8 levels
            high_res_features = [
                x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], *s)
                for x, s in zip(current_vision_feats[:-1], feat_sizes[:-1])
            ]
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
            pix_feat = current_vision_feats[-1].permute(1, 2, 0)  # (HW, B, C) -> (B, C, HW)
            pix_feat = pix_feat.reshape(-1, self.hidden_dim, *feat_sizes[-1])
            sam_outputs = self._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
            return current_out, sam_outputs, high_res_features, pix_feat
        pix_feat = self._prepare_memory_conditioned_features(
            frame_idx=frame_idx,
            is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=current_vision_feats[-1:],
            current_vision_pos_embeds=current_vision_pos_embeds[-1:],
            feat_sizes=feat_sizes[-1:],
            output_dict=output_dict,
            num_frames=num_frames,
            track_in_reverse=track_in_reverse,
        )
        if prev_sam_mask_logits is not None:
            # logits of an earlier interaction, fed back with new clicks
            if point_inputs is None or mask_inputs is not None:
                raise ValueError("prev_sam_mask_logits goes with point inputs and no mask input")
            mask_inputs = prev_sam_mask_logits
        sam_outputs = self._forward_sam_heads(
            backbone_features=pix_feat,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            high_res_features=high_res_features,
            multimask_output=self._use_multimask(is_init_cond_frame, point_inputs),
        )
        return current_out, sam_outputs, high_res_features, pix_feat

    def track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        point_inputs: dict[str, torch.Tensor] | None,
        mask_inputs: torch.Tensor | None,
        output_dict: dict[str, dict[int, dict[str, Any]]],
        num_frames: int,
        track_in_reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Segment one frame from its prompts and the memory bank, and encode its memory.

        Args:
            frame_idx: index of the frame.
            is_init_cond_frame: a prompted frame segmented without memories.
            current_vision_feats, current_vision_pos_embeds, feat_sizes: from
                `_prepare_backbone_features`.
            point_inputs: `point_coords` (B, P, 2), `point_labels` (B, P), or None.
            mask_inputs: (B, 1, H, W) mask input, or None.
            output_dict: the memory bank (`cond_frame_outputs`, `non_cond_frame_outputs`).
            num_frames: frames in the video.
            track_in_reverse: tracking backwards in time.
            run_mem_encoder: encode the new memory (skipped while clicks are still coming).
            prev_sam_mask_logits: earlier (B, 1, 256, 256) logits fed with new clicks.

        Returns:
            `point_inputs`, `mask_inputs`, `pred_masks` (B, 1, 256, 256), `pred_masks_high_res`
            (B, 1, image_size, image_size), `obj_ptr` (B, C), `object_score_logits` (B, 1, in
            eval), `maskmem_features` (B, mem_dim, 64, 64) and `maskmem_pos_enc` (or None).
        """
        current_out, sam_outputs, _, _ = self._track_step(
            frame_idx,
            is_init_cond_frame,
            current_vision_feats,
            current_vision_pos_embeds,
            feat_sizes,
            point_inputs,
            mask_inputs,
            output_dict,
            num_frames,
            track_in_reverse,
            prev_sam_mask_logits,
        )
        _, _, _, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
        current_out["pred_masks"] = low_res_masks
        current_out["pred_masks_high_res"] = high_res_masks
        current_out["obj_ptr"] = obj_ptr
        if not self.training:
            current_out["object_score_logits"] = object_score_logits
        self._encode_memory_in_output(
            current_vision_feats,
            feat_sizes,
            point_inputs,
            run_mem_encoder,
            high_res_masks,
            object_score_logits,
            current_out,
        )
        return current_out

    def _encode_memory_in_output(
        self,
        current_vision_feats: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        point_inputs: dict[str, torch.Tensor] | None,
        run_mem_encoder: bool,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        current_out: dict[str, Any],
    ) -> None:
        """Store the new memory (or None) under `maskmem_features` / `maskmem_pos_enc`."""
        features, pos = None, None
        if run_mem_encoder and self.num_maskmem > 0:
            features, pos = self._encode_new_memory(
                current_vision_feats=current_vision_feats,
                feat_sizes=feat_sizes,
                pred_masks_high_res=high_res_masks,
                object_score_logits=object_score_logits,
                is_mask_from_pts=point_inputs is not None,
            )
        current_out["maskmem_features"] = features
        current_out["maskmem_pos_enc"] = pos

    def _use_multimask(
        self, is_init_cond_frame: bool, point_inputs: dict[str, torch.Tensor] | None
    ) -> bool:
        """Multi-mask output for the first click(s) (a box counts as two points)."""
        num_pts = 0 if point_inputs is None else point_inputs["point_labels"].shape[1]
        return (
            self.multimask_output_in_sam
            and (is_init_cond_frame or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_pts <= self.multimask_max_pt_num
        )

    def _apply_non_overlapping_constraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep each pixel's highest-scoring object; others' logits there are clamped to <= -10.

        Args:
            pred_masks: (N_obj, 1, H, W) logits of the objects of one frame.
        """
        if pred_masks.shape[0] == 1:
            return pred_masks
        winner = pred_masks.argmax(dim=0, keepdim=True)  # (1, 1, H, W)
        ids = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
        return torch.where(winner == ids, pred_masks, pred_masks.clamp(max=-10.0))

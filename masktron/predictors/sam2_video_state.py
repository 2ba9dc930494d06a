"""The per-video state of `SAM2VideoPredictor` and the steps that run the model on it.

The state is a plain dict with the keys of Meta's `inference_state` (so code that reads it, e.g.
`state["num_frames"]` or `state["obj_ids"]`, ports unchanged). Per object index it holds:
  point_inputs_per_obj[i][t]      {"point_coords": (1, P, 2) in model pixels, "point_labels"}
  mask_inputs_per_obj[i][t]       (1, 1, S, S) float 0/1 mask prompt
  output_dict_per_obj[i]          {"cond_frame_outputs": {t: out}, "non_cond_frame_outputs"}
  temp_output_dict_per_obj[i]     the same, for prompts added since the last propagation
  frames_tracked_per_obj[i][t]    {"reverse": bool}, frames whose output came from tracking
An `out` is compact: maskmem_features (1, C, H/16, W/16) bfloat16 or None, maskmem_pos_enc,
pred_masks (1, 1, S/4, S/4) logits, obj_ptr (1, D), object_score_logits (1, 1).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from masktron.layers.connected_components import fill_holes_in_mask_scores

__all__ = ["NO_OBJ_SCORE", "new_state", "non_overlapping"]

# Mask logit standing for "no object here" (Meta's NO_OBJ_SCORE), far below any real score.
NO_OBJ_SCORE = -1024.0
OutputDict = dict[str, dict[int, dict[str, Any]]]


def new_state(
    frames: Any, *, device: torch.device, storage_device: torch.device, offload_video: bool
) -> dict[str, Any]:
    """An empty inference state over `frames` (a `VideoFrames`)."""
    return {
        "images": frames,
        "num_frames": len(frames),
        "offload_video_to_cpu": offload_video,
        "offload_state_to_cpu": storage_device != device,
        "video_height": frames.video_height,
        "video_width": frames.video_width,
        "device": device,
        "storage_device": storage_device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }


def empty_output_dict() -> OutputDict:
    return {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}


def non_overlapping(pred_masks: torch.Tensor) -> torch.Tensor:
    """Keep each pixel to its best-scoring object: the others' logits there become <= -10.

    Args:
        pred_masks: (N, 1, H, W) logits of N objects on one frame.
    """
    if pred_masks.size(0) == 1:
        return pred_masks
    best = pred_masks.argmax(dim=0, keepdim=True)  # (1, 1, H, W)
    own = torch.arange(pred_masks.size(0), device=pred_masks.device)[:, None, None, None]
    return torch.where(best == own, pred_masks, pred_masks.clamp(max=-10.0))


class FrameRunner:
    """Runs the model's steps for one object on one frame, on a state, as Meta's predictor.

    Args:
        model: a SAM 2 model (`SAM2Base` interface).
        fill_hole_area: fill holes of at most this many low-resolution pixels in the masks
            (0: no filling).
    """

    def __init__(self, model: torch.nn.Module, *, fill_hole_area: int):
        self.model: Any = model
        self.fill_hole_area = int(fill_hole_area)

    def image_features(self, state: dict, frame_idx: int, batch_size: int) -> tuple:
        """(image, backbone_out, vision_feats, vision_pos_embeds, feat_sizes) of a frame.

        The most recent frame's backbone output is cached (clicks on one frame reuse it).
        Features are expanded (not copied) to `batch_size` objects.
        """
        image, backbone_out = state["cached_features"].get(frame_idx, (None, None))
        if backbone_out is None:
            image = state["images"][frame_idx].to(state["device"]).float().unsqueeze(0)
            backbone_out = self.model.forward_image(image)  # (1, 3, S, S) in
            state["cached_features"] = {frame_idx: (image, backbone_out)}
        expanded = {
            "backbone_fpn": [
                x.expand(batch_size, -1, -1, -1) for x in backbone_out["backbone_fpn"]
            ],
            "vision_pos_enc": [
                x.expand(batch_size, -1, -1, -1) for x in backbone_out["vision_pos_enc"]
            ],
        }
        prepared = self.model._prepare_backbone_features(expanded)
        return (image.expand(batch_size, -1, -1, -1), *prepared)

    def run(
        self,
        state: dict,
        output_dict: OutputDict,
        frame_idx: int,
        *,
        is_init_cond_frame: bool,
        point_inputs: dict | None,
        mask_inputs: torch.Tensor | None,
        reverse: bool,
        run_mem_encoder: bool,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """One `track_step` of one object; returns (compact output, (1, 1, S/4, S/4) logits)."""
        if point_inputs is not None and mask_inputs is not None:
            raise ValueError("a frame takes either points or a mask prompt, not both")
        _, _, feats, pos_embeds, feat_sizes = self.image_features(state, frame_idx, 1)
        out = self.model.track_step(
            frame_idx=frame_idx,
            is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=feats,
            current_vision_pos_embeds=pos_embeds,
            feat_sizes=feat_sizes,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            output_dict=output_dict,
            num_frames=state["num_frames"],
            track_in_reverse=reverse,
            run_mem_encoder=run_mem_encoder,
            prev_sam_mask_logits=prev_sam_mask_logits,
        )
        storage = state["storage_device"]
        memory = out["maskmem_features"]
        if memory is not None:  # stored in bfloat16, as Meta's predictor (half the memory)
            memory = memory.to(torch.bfloat16).to(storage, non_blocking=True)
        masks = out["pred_masks"]
        if self.fill_hole_area > 0:
            masks = fill_holes_in_mask_scores(masks, self.fill_hole_area)
        compact = {
            "maskmem_features": memory,
            "maskmem_pos_enc": self.shared_pos_enc(state, out["maskmem_pos_enc"]),
            "pred_masks": masks.to(storage, non_blocking=True),
            "obj_ptr": out["obj_ptr"],
            "object_score_logits": out["object_score_logits"],
        }
        return compact, masks

    def encode_memory(
        self,
        state: dict,
        frame_idx: int,
        high_res_masks: torch.Tensor,
        object_score_logits: torch.Tensor,
        *,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Memory features of one object on a frame from its (1, 1, S, S) mask logits."""
        _, _, feats, _, feat_sizes = self.image_features(state, frame_idx, 1)
        memory, pos_enc = self.model._encode_new_memory(
            current_vision_feats=feats,
            feat_sizes=feat_sizes,
            pred_masks_high_res=high_res_masks,
            object_score_logits=object_score_logits,
            is_mask_from_pts=is_mask_from_pts,
        )
        memory = memory.to(torch.bfloat16).to(state["storage_device"], non_blocking=True)
        return memory, self.shared_pos_enc(state, pos_enc)

    @staticmethod
    def shared_pos_enc(state: dict, pos_enc: list[torch.Tensor] | None) -> list | None:
        """The memory's position encoding is the same on every frame: keep one copy."""
        if pos_enc is None:
            return None
        constants = state["constants"]
        if "maskmem_pos_enc" not in constants:
            constants["maskmem_pos_enc"] = [x[0:1].clone() for x in pos_enc]
        batch = pos_enc[0].size(0)
        return [x.expand(batch, -1, -1, -1) for x in constants["maskmem_pos_enc"]]


def find_output(state: dict, obj_idx: int, frame_idx: int, storage_key: str) -> dict | None:
    """An object's latest output on a frame: a new prompt's first, then the tracked ones."""
    out = state["temp_output_dict_per_obj"][obj_idx][storage_key].get(frame_idx)
    done = state["output_dict_per_obj"][obj_idx]
    if out is None:
        out = done["cond_frame_outputs"].get(frame_idx)
    if out is None:
        out = done["non_cond_frame_outputs"].get(frame_idx)
    return out


def consolidate(state: dict, frame_idx: int, *, is_cond: bool, video_res: bool) -> torch.Tensor:
    """Every object's mask logits on one frame, (N, 1, h, w); objects without one: NO_OBJ_SCORE.

    `video_res` gives the video's size, else the model's low resolution (S/4).
    """
    storage_key = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
    if video_res:
        size = (state["video_height"], state["video_width"])
    else:
        side = state["images"].image_size // 4
        size = (side, side)
    count = len(state["obj_idx_to_id"])
    masks = torch.full((count, 1, *size), NO_OBJ_SCORE, device=state["storage_device"])
    for obj_idx in range(count):
        out = find_output(state, obj_idx, frame_idx, storage_key)
        if out is None:
            continue
        obj_mask = out["pred_masks"]
        if obj_mask.shape[-2:] != size:
            obj_mask = F.interpolate(obj_mask, size=size, mode="bilinear", align_corners=False)
        masks[obj_idx : obj_idx + 1] = obj_mask
    return masks


def to_video_res(state: dict, masks: torch.Tensor, non_overlap: bool) -> torch.Tensor:
    """(N, 1, h, w) logits -> (N, 1, video H, video W) logits (bilinear), optionally made
    non-overlapping across objects."""
    masks = masks.to(state["device"], non_blocking=True)
    size = (state["video_height"], state["video_width"])
    if masks.shape[-2:] != size:
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    return non_overlapping(masks) if non_overlap else masks


def memory_reach(model: Any) -> int:
    """How far (in frames) a tracked output can still be read by `track_step`: its memories
    (`num_maskmem` frames at the eval stride) and object pointers (`max_obj_ptrs_in_encoder`)."""
    stride = int(getattr(model, "memory_temporal_stride_for_eval", 1))
    return max(stride * int(model.num_maskmem), int(model.max_obj_ptrs_in_encoder)) + 1


def forget_tracked_outputs(state: dict, keep_near: list[int], reach: int) -> int:
    """Drop tracked (non-conditioning) outputs farther than `reach` frames from every frame of
    `keep_near`; prompted frames are always kept. Later tracking near those frames is
    unchanged (`memory_reach`), and a long video's state stops growing. Returns how many."""
    dropped = 0
    for outputs in state["output_dict_per_obj"].values():
        tracked = outputs["non_cond_frame_outputs"]
        for t in [t for t in tracked if all(abs(t - k) > reach for k in keep_near)]:
            del tracked[t]
            dropped += 1
    return dropped

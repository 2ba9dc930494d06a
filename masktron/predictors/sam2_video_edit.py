"""Prompts of `SAM2VideoPredictor`: add points, boxes and masks; clear them; drop objects.

A prompt on a frame an object was never tracked on makes it a conditioning frame (segmented
without memory, like SAM on an image); a prompt on a tracked frame corrects it. Prompts only
run the mask decoder: memories are encoded when propagation starts, so that all objects' final
masks on the frame are known first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from masktron.predictors.sam2_video_state import FrameRunner, empty_output_dict

__all__ = ["PromptEditing"]

Output = tuple[int, list, torch.Tensor]


def _as_tensor(value: Any, dtype: torch.dtype, what: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not an array of numbers ({e})") from None
    return tensor.to(dtype)


class PromptEditing:
    """The prompt-handling half of `SAM2VideoPredictor` (see there for the attributes)."""

    model: Any
    add_all_frames_to_correct_as_cond: bool
    clear_non_cond_mem_around_input: bool
    _runner: FrameRunner

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    def _video_res_output(self, state: dict, frame_idx: int, is_cond: bool) -> torch.Tensor:
        raise NotImplementedError

    def _previous_logits(self, state: dict, obj_idx: int, frame_idx: int, key: str) -> Any:
        raise NotImplementedError

    def _obj_id_to_idx(self, inference_state: dict, obj_id: Any) -> int:
        """The model-side index of a user's object id; a new id gets the next free index."""
        state = inference_state
        obj_idx = state["obj_id_to_idx"].get(obj_id)
        if obj_idx is not None:
            return int(obj_idx)
        obj_idx = len(state["obj_id_to_idx"])
        state["obj_id_to_idx"][obj_id] = obj_idx
        state["obj_idx_to_id"][obj_idx] = obj_id
        state["obj_ids"] = list(state["obj_id_to_idx"])
        state["point_inputs_per_obj"][obj_idx] = {}
        state["mask_inputs_per_obj"][obj_idx] = {}
        state["output_dict_per_obj"][obj_idx] = empty_output_dict()
        state["temp_output_dict_per_obj"][obj_idx] = empty_output_dict()
        state["frames_tracked_per_obj"][obj_idx] = {}
        return obj_idx

    def _obj_idx_to_id(self, inference_state: dict, obj_idx: int) -> Any:
        return inference_state["obj_idx_to_id"][obj_idx]

    def _get_obj_num(self, inference_state: dict) -> int:
        return len(inference_state["obj_idx_to_id"])

    def _check_frame(self, state: dict, frame_idx: int) -> int:
        if not 0 <= int(frame_idx) < state["num_frames"]:
            count = state["num_frames"]
            raise IndexError(f"frame_idx {frame_idx} out of range (the video has {count} frames)")
        return int(frame_idx)

    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: dict,
        frame_idx: int,
        obj_id: Any,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> Output:
        """Click points (labels 1 positive, 0 negative) and/or a box on one object in a frame.

        Args:
            points: (P, 2) or (1, P, 2) XY in video pixels (or in [0, 1] with
                `normalize_coords=False`).
            labels: (P,) or (1, P) ints.
            clear_old_points: replace this frame's earlier points of the object (else append;
                a box must come first, so it needs True).
            box: XYXY, in the same frame as the points.

        Returns:
            (frame_idx, obj_ids, masks): every object's (N, 1, H, W) logits on the frame.
        """
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be given together")
        if points is None and box is None:
            raise ValueError("give points (with labels), a box, or both")
        points = (
            torch.zeros(0, 2) if points is None else _as_tensor(points, torch.float32, "points")
        )
        labels = torch.zeros(0) if labels is None else _as_tensor(labels, torch.int32, "labels")
        points = points.unsqueeze(0) if points.dim() == 2 else points  # (1, P, 2)
        labels = (labels.unsqueeze(0) if labels.dim() == 1 else labels).to(torch.int32)  # (1, P)
        if points.dim() != 3 or points.size(-1) != 2 or labels.shape != points.shape[:2]:
            raise ValueError(
                f"points of shape {tuple(points.shape)} and labels of shape "
                f"{tuple(labels.shape)}: expected (P, 2) and (P,)"
            )
        if box is not None:
            if not clear_old_points:
                raise ValueError("a box must come before any point: use clear_old_points=True")
            corners = _as_tensor(box, torch.float32, "box").reshape(1, 2, 2)  # XYXY -> 2 corners
            points = torch.cat([corners, points], dim=1)
            # SAM 2 takes a box as its two corners, labelled 2 and 3, ahead of the clicks
            labels = torch.cat([torch.tensor([[2, 3]], dtype=torch.int32), labels], dim=1)
        if normalize_coords:
            points = points / torch.tensor([state["video_width"], state["video_height"]])
        points = (points * self.image_size).to(state["device"])
        labels = labels.to(state["device"])
        obj_idx = self._obj_id_to_idx(state, obj_id)
        per_frame = state["point_inputs_per_obj"][obj_idx]
        old = None if clear_old_points else per_frame.get(frame_idx)
        if old is not None:
            points = torch.cat([old["point_coords"], points], dim=1)
            labels = torch.cat([old["point_labels"], labels], dim=1)
        point_inputs = {"point_coords": points, "point_labels": labels}
        per_frame[frame_idx] = point_inputs
        state["mask_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        return self._run_prompt(state, obj_idx, frame_idx, point_inputs, None)

    def add_new_points(self, *args: Any, **kwargs: Any) -> Output:
        """The former name of `add_new_points_or_box` (kept, as in Meta's class)."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(self, inference_state: dict, frame_idx: int, obj_id: Any, mask: Any) -> Output:
        """A mask prompt: (H, W) bool/0-1 for one object on a frame (any size, resized to S)."""
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        if not torch.is_tensor(mask):  # a tensor keeps its values (soft masks), as Meta's
            mask = _as_tensor(mask, torch.bool, "mask")
        if mask.dim() != 2:
            raise ValueError(f"mask of shape {tuple(mask.shape)}: expected (H, W)")
        mask_inputs = mask[None, None].float().to(state["device"])  # (1, 1, H, W)
        if mask_inputs.shape[-2:] != (self.image_size, self.image_size):
            mask_inputs = F.interpolate(
                mask_inputs,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,  # a downscaled mask keeps thin parts as their coverage
            )
            mask_inputs = (mask_inputs >= 0.5).float()
        obj_idx = self._obj_id_to_idx(state, obj_id)
        state["mask_inputs_per_obj"][obj_idx][frame_idx] = mask_inputs
        state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        return self._run_prompt(state, obj_idx, frame_idx, None, mask_inputs)

    def _run_prompt(
        self,
        state: dict,
        obj_idx: int,
        frame_idx: int,
        point_inputs: dict | None,
        mask_inputs: torch.Tensor | None,
    ) -> Output:
        """Decode one object's prompt on a frame; return every object's masks there."""
        tracked = state["frames_tracked_per_obj"][obj_idx]
        is_init_cond_frame = frame_idx not in tracked
        reverse = False if is_init_cond_frame else tracked[frame_idx]["reverse"]
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        key = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
        previous = None  # clicks refine the mask decoded before them on this frame
        if point_inputs is not None:
            previous = self._previous_logits(state, obj_idx, frame_idx, key)
        out, _ = self._runner.run(
            state,
            state["output_dict_per_obj"][obj_idx],
            frame_idx,
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            run_mem_encoder=False,  # encoded when propagation starts (see the module doc)
            prev_sam_mask_logits=previous,
        )
        state["temp_output_dict_per_obj"][obj_idx][key][frame_idx] = out
        return frame_idx, state["obj_ids"], self._video_res_output(state, frame_idx, is_cond)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: dict, frame_idx: int, obj_id: Any, need_output: bool = True
    ) -> Output | None:
        """Remove an object's points and mask on a frame; its output there becomes tracked."""
        state = inference_state
        obj_idx = self._obj_id_to_idx(state, obj_id)
        state["point_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        state["mask_inputs_per_obj"][obj_idx].pop(frame_idx, None)
        temp = state["temp_output_dict_per_obj"]
        temp[obj_idx]["cond_frame_outputs"].pop(frame_idx, None)
        temp[obj_idx]["non_cond_frame_outputs"].pop(frame_idx, None)
        done = state["output_dict_per_obj"][obj_idx]
        out = done["cond_frame_outputs"].pop(frame_idx, None)
        if out is not None:  # no prompt any more: a conditioning output becomes a tracked one
            done["non_cond_frame_outputs"][frame_idx] = out
            state["frames_tracked_per_obj"][obj_idx].pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in t["cond_frame_outputs"] for t in temp.values())
        return frame_idx, state["obj_ids"], self._video_res_output(state, frame_idx, is_cond)

    @torch.inference_mode()
    def reset_state(self, inference_state: dict) -> None:
        """Forget every object, prompt and tracked output (the frames stay)."""
        state = inference_state
        self._reset_tracking_results(state)
        for key in ("obj_id_to_idx", "obj_idx_to_id", "point_inputs_per_obj"):
            state[key].clear()
        for key in ("mask_inputs_per_obj", "output_dict_per_obj", "temp_output_dict_per_obj"):
            state[key].clear()
        state["frames_tracked_per_obj"].clear()
        state["obj_ids"].clear()

    def _reset_tracking_results(self, inference_state: dict) -> None:
        state = inference_state
        for key in ("point_inputs_per_obj", "mask_inputs_per_obj", "frames_tracked_per_obj"):
            for per_frame in state[key].values():
                per_frame.clear()
        for key in ("output_dict_per_obj", "temp_output_dict_per_obj"):
            for outputs in state[key].values():
                outputs["cond_frame_outputs"].clear()
                outputs["non_cond_frame_outputs"].clear()

    @torch.inference_mode()
    def remove_object(
        self, inference_state: dict, obj_id: Any, strict: bool = False, need_output: bool = True
    ) -> tuple[list, list[tuple[int, torch.Tensor]]]:
        """Drop an object; returns (remaining obj_ids, [(frame_idx, masks) of its prompted
        frames, where other objects' masks may have changed])."""
        state = inference_state
        removed = state["obj_id_to_idx"].get(obj_id)
        if removed is None:
            if strict:
                raise RuntimeError(f"no object id {obj_id}; the ids are {state['obj_ids']}")
            return state["obj_ids"], []
        if len(state["obj_id_to_idx"]) == 1:
            self.reset_state(state)
            return state["obj_ids"], []
        frames = set(state["point_inputs_per_obj"][removed])
        frames |= set(state["mask_inputs_per_obj"][removed])
        for frame_idx in frames:  # may turn conditioning frames into tracked ones
            self.clear_all_prompts_in_frame(state, frame_idx, obj_id, need_output=False)
        kept = [i for i in range(len(state["obj_ids"])) if i != removed]
        new_ids = [state["obj_ids"][i] for i in kept]
        state["obj_id_to_idx"] = dict(zip(new_ids, range(len(new_ids))))
        state["obj_idx_to_id"] = dict(zip(range(len(new_ids)), new_ids))
        state["obj_ids"] = new_ids
        for key in (
            "point_inputs_per_obj",
            "mask_inputs_per_obj",
            "output_dict_per_obj",
            "temp_output_dict_per_obj",
            "frames_tracked_per_obj",
        ):
            old = state[key]
            state[key] = {new: old[i] for new, i in enumerate(kept)}
        updated: list[tuple[int, torch.Tensor]] = []
        if need_output:
            temp = state["temp_output_dict_per_obj"]
            for frame_idx in frames:
                is_cond = any(frame_idx in t["cond_frame_outputs"] for t in temp.values())
                updated.append((frame_idx, self._video_res_output(state, frame_idx, is_cond)))
        return state["obj_ids"], updated

    def _clear_non_cond_mem_around_input(self, inference_state: dict, frame_idx: int) -> None:
        """Forget every object's tracked memories within `num_maskmem` frames of `frame_idx`
        (they describe the object as it was before the correction)."""
        stride = getattr(self.model, "memory_temporal_stride_for_eval", 1)
        reach = stride * self.model.num_maskmem
        for outputs in inference_state["output_dict_per_obj"].values():
            tracked = outputs["non_cond_frame_outputs"]
            for t in range(frame_idx - reach, frame_idx + reach + 1):
                tracked.pop(t, None)

"""SAM 2's video predictor: prompt objects on some frames, track them through the whole video.

    predictor = build_sam2_video_predictor("sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt")
    state = predictor.init_state("frames/")           # a folder of frames or a video file
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[210, 350]], labels=[1])
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=2, box=[300, 0, 500, 400])
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(state):
        ...  # masks: (len(obj_ids), 1, H, W) float logits at the video's size; > 0 is the object

Method names, arguments, the state dict and the outputs are those of Meta's
`sam2.SAM2VideoPredictor`, so ported code changes only its imports. Unlike Meta's class (a
subclass of the model), this one holds the model (`predictor.model`); reading a model attribute
on the predictor (`predictor.image_size`) still works. Frames are decoded and resized only when
the model needs them (`masktron.data.video_frames.VideoFrames`), and it runs on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from masktron.data.video_frames import VideoFrames
from masktron.predictors.sam2_video_edit import PromptEditing
from masktron.predictors.sam2_video_state import (
    FrameRunner,
    consolidate,
    find_output,
    new_state,
    to_video_res,
)

__all__ = ["SAM2VideoPredictor", "build_sam2_video_predictor"]


class SAM2VideoPredictor(PromptEditing):
    """Track prompted objects through a video with a SAM 2 model.

    Args:
        model: a SAM 2 model built for video (`build_sam2_video_model`), in eval mode.
        fill_hole_area: fill holes of at most this many pixels of the (S/4)^2 low-resolution
            masks (done with torch ops on every device; Meta's builder sets 8).
        non_overlap_masks: give each output pixel to the best-scoring object only.
        clear_non_cond_mem_around_input: forget tracked memories next to a frame that gets a
            correction prompt.
        add_all_frames_to_correct_as_cond: frames corrected after tracking become conditioning
            frames too.
        frame_cache_size: resized frames kept in memory by each video's frame source.

    The four settings default to the model's attributes of the same names (which the video
    builder sets as Meta's does), else to off.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        fill_hole_area: int | None = None,
        non_overlap_masks: bool | None = None,
        clear_non_cond_mem_around_input: bool | None = None,
        add_all_frames_to_correct_as_cond: bool | None = None,
        frame_cache_size: int = 16,
    ):
        def setting(value: Any, name: str) -> Any:
            return getattr(model, name, 0) if value is None else value

        self.model = model
        self.fill_hole_area = int(setting(fill_hole_area, "fill_hole_area"))
        self.non_overlap_masks = bool(setting(non_overlap_masks, "non_overlap_masks"))
        self.clear_non_cond_mem_around_input = bool(
            setting(clear_non_cond_mem_around_input, "clear_non_cond_mem_around_input")
        )
        self.add_all_frames_to_correct_as_cond = bool(
            setting(add_all_frames_to_correct_as_cond, "add_all_frames_to_correct_as_cond")
        )
        self.frame_cache_size = int(frame_cache_size)
        self._runner = FrameRunner(model, fill_hole_area=self.fill_hole_area)

    def __getattr__(self, name: str) -> Any:
        # Meta's predictor is the model: `predictor.image_size`, `predictor.device`, ...
        if name in ("model", "_runner"):  # not set yet: no recursion during __init__
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def image_size(self) -> int:
        return int(self.model.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> SAM2VideoPredictor:
        """Move the model to `device`; states made before keep theirs."""
        self.model.to(device)
        return self

    @torch.inference_mode()
    def init_state(
        self,
        video_path: str | os.PathLike,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> dict[str, Any]:
        """A new tracking state over a video file or a folder of frames.

        Frames stay on the CPU, decoded when needed, whatever `offload_video_to_cpu` and
        `async_loading_frames` say (they exist for Meta's signature). `offload_state_to_cpu`
        keeps the tracked outputs in CPU memory when the model runs on a GPU.
        """
        device = self.device
        frames = VideoFrames(
            video_path, image_size=self.image_size, cache_size=self.frame_cache_size
        )
        storage = torch.device("cpu") if offload_state_to_cpu else device
        state = new_state(frames, device=device, storage_device=storage, offload_video=True)
        state["offload_video_to_cpu"] = offload_video_to_cpu
        state["offload_state_to_cpu"] = offload_state_to_cpu
        self._runner.image_features(state, 0, 1)  # the first frame: most prompts land there
        return state

    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: dict[str, Any]) -> None:
        """Move the prompts' outputs into the tracked outputs, encoding their memories."""
        state = inference_state
        count = len(state["obj_idx_to_id"])
        if count == 0:
            raise RuntimeError("no object has a prompt yet: add points, a box or a mask first")
        size = (self.image_size, self.image_size)
        for obj_idx in range(count):
            done = state["output_dict_per_obj"][obj_idx]
            temp = state["temp_output_dict_per_obj"][obj_idx]
            for storage_key in ("non_cond_frame_outputs", "cond_frame_outputs"):
                for frame_idx, out in temp[storage_key].items():
                    if out["maskmem_features"] is None:  # prompts skip the memory encoder
                        high_res = F.interpolate(
                            out["pred_masks"].to(state["device"]),
                            size=size,
                            mode="bilinear",
                            align_corners=False,
                        )
                        out["maskmem_features"], out["maskmem_pos_enc"] = (
                            self._runner.encode_memory(
                                state,
                                frame_idx,
                                high_res,
                                out["object_score_logits"],
                                is_mask_from_pts=True,
                            )
                        )
                    done[storage_key][frame_idx] = out
                    if self.clear_non_cond_mem_around_input:
                        self._clear_non_cond_mem_around_input(state, frame_idx)
                temp[storage_key].clear()
            if not done["cond_frame_outputs"]:
                obj_id = state["obj_idx_to_id"][obj_idx]
                raise RuntimeError(f"object {obj_id} has no prompt: add points, a box or a mask")
            for frame_idx in done["cond_frame_outputs"]:  # a prompted frame is conditioning
                done["non_cond_frame_outputs"].pop(frame_idx, None)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: dict[str, Any],
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list, torch.Tensor]]:
        """Track every object from `start_frame_idx` (default: the first prompted frame).

        Yields:
            (frame_idx, obj_ids, video_res_masks): masks (len(obj_ids), 1, H, W) float logits
            at the video's size, in the order of `obj_ids`.
        """
        state = inference_state
        self.propagate_in_video_preflight(state)
        obj_ids = state["obj_ids"]
        count = len(state["obj_idx_to_id"])
        num_frames = state["num_frames"]
        if start_frame_idx is None:
            start_frame_idx = min(
                t
                for out in state["output_dict_per_obj"].values()
                for t in out["cond_frame_outputs"]
            )
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        for frame_idx in tqdm(order, desc="propagate in video"):
            per_obj = []
            for obj_idx in range(count):
                done = state["output_dict_per_obj"][obj_idx]
                if frame_idx in done["cond_frame_outputs"]:  # prompted: its output is final
                    masks = done["cond_frame_outputs"][frame_idx]["pred_masks"]
                    masks = masks.to(state["device"], non_blocking=True)
                    if self.clear_non_cond_mem_around_input:
                        self._clear_non_cond_mem_around_input(state, frame_idx)
                else:
                    out, masks = self._runner.run(
                        state,
                        done,
                        frame_idx,
                        is_init_cond_frame=False,
                        point_inputs=None,
                        mask_inputs=None,
                        reverse=reverse,
                        run_mem_encoder=True,
                    )
                    done["non_cond_frame_outputs"][frame_idx] = out
                state["frames_tracked_per_obj"][obj_idx][frame_idx] = {"reverse": reverse}
                per_obj.append(masks)
            all_masks = torch.cat(per_obj, dim=0) if len(per_obj) > 1 else per_obj[0]
            yield frame_idx, obj_ids, to_video_res(state, all_masks, self.non_overlap_masks)

    def _video_res_output(self, state: dict, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's (N, 1, H, W) logits on a frame just edited, at the video's size."""
        masks = consolidate(state, frame_idx, is_cond=is_cond, video_res=True)
        return to_video_res(state, masks, self.non_overlap_masks)

    def _previous_logits(self, state: dict, obj_idx: int, frame_idx: int, key: str) -> Any:
        out = find_output(state, obj_idx, frame_idx, key)
        if out is None or out["pred_masks"] is None:
            return None
        # clamped against rare numerical trouble when fed back with new clicks (as Meta's)
        return out["pred_masks"].to(state["device"], non_blocking=True).clamp(-32.0, 32.0)


def build_sam2_video_predictor(
    config_file: str | None = None,
    ckpt_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    mode: str = "eval",
    hydra_overrides_extra: list[str] | None = None,
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    **kwargs: Any,
) -> SAM2VideoPredictor:
    """Meta's `build_sam2_video_predictor`: the video model and a predictor around it.

    `config_file` is Meta's config name (`configs/sam2.1/sam2.1_hiera_t.yaml`) or None to read
    the variant from the checkpoint. With `apply_postprocessing`, masks get Meta's hole filling
    (8 pixels). `vos_optimized` (Meta's torch.compile variant) is not supported; other keyword
    arguments are `SAM2VideoPredictor`'s settings.
    """
    from masktron.models.sam2.build import build_sam2_video_model

    if vos_optimized:
        raise ValueError("vos_optimized=True (Meta's compiled VOS variant) is not supported")
    model = build_sam2_video_model(
        config_file,
        ckpt_path,
        device=device,
        mode=mode,
        apply_postprocessing=apply_postprocessing,
        hydra_overrides_extra=hydra_overrides_extra or (),
    )
    return SAM2VideoPredictor(model, **kwargs)

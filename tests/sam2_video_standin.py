"""A stand-in for `SAM2VideoPredictor` in tests of what is built on it (CLI outputs, seeding).

It keeps the predictor's interface and state keys over real frames (`VideoFrames`), and makes
masks by rule instead of a model: an object prompted with a box is that box, one prompted with
points a 9x9 square around its first point; on frame t it has moved `step` pixels right per frame
away from its prompt. So tests know every mask without running SAM 2.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from masktron.data.video_frames import VideoFrames


class StandInVideoPredictor:
    def __init__(self, step: int = 2):
        self.step = step
        self.model = type("Model", (), {"num_maskmem": 7, "max_obj_ptrs_in_encoder": 16})()
        self.calls: list[tuple] = []

    def init_state(self, video_path) -> dict:
        frames = VideoFrames(video_path, image_size=64)
        return {
            "images": frames,
            "num_frames": len(frames),
            "video_height": frames.video_height,
            "video_width": frames.video_width,
            "obj_ids": [],
            "prompts": {},
            "output_dict_per_obj": {},
        }

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None):
        self.calls.append(("add", frame_idx, obj_id))
        if box is None:
            x, y = (float(v) for v in points[0])
            box = [x - 4, y - 4, x + 5, y + 5]
        if obj_id not in state["obj_ids"]:
            state["obj_ids"].append(obj_id)
            state["output_dict_per_obj"][len(state["obj_ids"]) - 1] = {
                "cond_frame_outputs": {},
                "non_cond_frame_outputs": {},
            }
        state["prompts"][obj_id] = (frame_idx, [float(v) for v in box])
        return frame_idx, list(state["obj_ids"]), self._masks(state, frame_idx)

    def mask_box(self, state, obj_id, frame_idx) -> list[int]:
        start, (x0, y0, x1, y1) = state["prompts"][obj_id]
        dx = self.step * (frame_idx - start)
        return [round(x0 + dx), round(y0), round(x1 + dx), round(y1)]

    def _masks(self, state, frame_idx) -> torch.Tensor:
        h, w = state["video_height"], state["video_width"]
        masks = torch.full((len(state["obj_ids"]), 1, h, w), -1024.0)
        for k, obj_id in enumerate(state["obj_ids"]):
            x0, y0, x1, y1 = self.mask_box(state, obj_id, frame_idx)
            masks[k, 0, max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 5.0
        return masks

    def propagate_in_video(
        self, state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False
    ) -> Iterator[tuple[int, list, torch.Tensor]]:
        self.calls.append(("propagate", start_frame_idx, max_frame_num_to_track, reverse))
        n = state["num_frames"]
        start = 0 if start_frame_idx is None else start_frame_idx
        count = n if max_frame_num_to_track is None else max_frame_num_to_track
        if reverse:
            order = range(start, max(start - count, 0) - 1, -1)
        else:
            order = range(start, min(start + count, n - 1) + 1)
        for t in order:
            yield t, list(state["obj_ids"]), self._masks(state, t)

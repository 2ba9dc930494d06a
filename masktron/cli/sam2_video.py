"""`masktron sam2` on a video file or a folder of frames: track prompted objects, write results.

Prompts become objects (ids from 1: the boxes in the order given, then the positive points):
every box is one object, every positive point (label 1) is one object, and a negative point
(label 0) belongs to the last object prompted on the same frame. A prompt's frame defaults to
0. Tracking runs forward from the earliest prompted frame to the end, then backward from it to
frame 0.

Writes, into the output folder (STEM: the video's or folder's name):
  STEM_masks/FFFFF_objN.png   one black/white PNG per frame and object, at the video's size
  STEM_rle/FFFFF.json         the frame's objects as COCO RLE (`segmentation`), `area`, `bbox`
                              (XYWH), `obj_id`; objects absent from the frame are left out
  STEM_preview.mp4            the frames with the masks drawn, one colour and "#N" per object
  STEM_preview.gif            the first 300 frames the same, at most 480 px wide (`gif=True`;
                              a GIF is held in memory while written: short clips only)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["VideoPrompt", "group_prompts", "track_video", "write_preview"]


@dataclass
class VideoPrompt:
    """One object's prompt on one frame: points (XY video pixels) with labels, and/or a box."""

    obj_id: int
    frame: int
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None


def group_prompts(
    points: Iterable[Sequence[float]], boxes: Iterable[Sequence[float]]
) -> list[VideoPrompt]:
    """Objects from CLI prompts (see the module docstring).

    Args:
        points: (x, y, label, frame) each; boxes: (x0, y0, x1, y1, frame) each.
    """
    prompts: list[VideoPrompt] = []
    last_on_frame: dict[int, VideoPrompt] = {}
    for x0, y0, x1, y1, frame in boxes:
        prompt = VideoPrompt(len(prompts) + 1, int(frame), box=(x0, y0, x1, y1))
        prompts.append(prompt)
        last_on_frame[prompt.frame] = prompt
    for x, y, label, frame in points:
        frame = int(frame)
        if int(label) == 1:
            prompt = VideoPrompt(len(prompts) + 1, frame)
            prompts.append(prompt)
            last_on_frame[frame] = prompt
        elif frame in last_on_frame:
            prompt = last_on_frame[frame]
        else:
            raise ValueError(
                f"--point {x:g},{y:g},0@{frame}: a negative point needs an object prompted "
                "before it on the same frame (a box or a positive point)"
            )
        prompt.points.append((float(x), float(y)))
        prompt.labels.append(int(label))
    return prompts


def track_video(
    predictor: Any,
    source: str,
    prompts: Sequence[VideoPrompt],
    out_dir: str,
    *,
    gif: bool = False,
    fps: float | None = None,
) -> dict[str, Any]:
    """Prompt, propagate and write every output for one video (see the module docstring).

    Returns:
        a summary: `name`, `frames`, `objects` (ids), and the output paths.
    """
    from masktron.cli.main import CommandError
    from masktron.predictors.sam2_video_state import forget_tracked_outputs, memory_reach

    if not prompts:
        raise CommandError("a video needs prompts (--point, --box)")
    state = predictor.init_state(source)
    frames = state["images"]
    num_frames = state["num_frames"]
    for prompt in prompts:
        if not 0 <= prompt.frame < num_frames:
            raise CommandError(
                f"{source}: a prompt on frame {prompt.frame}, the video has {num_frames} frames"
            )
        predictor.add_new_points_or_box(
            state,
            prompt.frame,
            prompt.obj_id,
            points=np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2)
            if prompt.points
            else None,
            labels=np.asarray(prompt.labels, dtype=np.int32) if prompt.points else None,
            box=prompt.box,
        )
    writer = _FrameWriter(out_dir, frames.name, state["video_height"], state["video_width"])
    first = min(p.frame for p in prompts)
    passes = [predictor.propagate_in_video(state, start_frame_idx=first)]
    if first > 0:  # the frames before the first prompt, tracked backwards
        passes.append(predictor.propagate_in_video(state, start_frame_idx=first, reverse=True))
    reach = memory_reach(predictor.model)
    for k, results in enumerate(passes):
        for frame_idx, obj_ids, masks in results:
            # a long video's state stays bounded: keep what the memory can still read, and the
            # frames next to the first prompt, where the backward pass starts
            forget_tracked_outputs(state, [frame_idx, first], reach)
            if k and frame_idx == first:
                continue  # written by the forward pass
            writer.add(frame_idx, list(obj_ids), masks)
    preview = os.path.join(out_dir, f"{frames.name}_preview.mp4")
    rate = fps or frames.fps or 30.0
    write_preview(frames, writer.rles, preview, fps=rate, gif=gif)
    return {
        "name": frames.name,
        "frames": len(writer.rles),
        "objects": [p.obj_id for p in prompts],
        "preview": preview,
        "masks": writer.mask_dir,
        "rle": writer.rle_dir,
    }


class _FrameWriter:
    """Per-frame outputs: each object's PNG and the frame's RLE JSON, written atomically."""

    def __init__(self, out_dir: str, name: str, height: int, width: int):
        self.mask_dir = os.path.join(out_dir, f"{name}_masks")
        self.rle_dir = os.path.join(out_dir, f"{name}_rle")
        os.makedirs(self.mask_dir, exist_ok=True)
        os.makedirs(self.rle_dir, exist_ok=True)
        self.size = (int(height), int(width))
        self.rles: dict[int, list[dict[str, Any]]] = {}  # frame -> its objects' records

    def add(self, frame_idx: int, obj_ids: list, masks: torch.Tensor) -> None:
        """Masks (N, 1, H, W) logits of `obj_ids` on one frame."""
        import pycocotools.mask as mask_utils
        from PIL import Image

        from masktron.utils.file_io import atomic_open, write_json

        binary = (masks[:, 0] > 0).cpu().numpy()  # (N, 1, H, W) -> (N, H, W) bool
        records = []
        for obj_id, mask in zip(obj_ids, binary):
            path = os.path.join(self.mask_dir, f"{frame_idx:05d}_obj{obj_id}.png")
            with atomic_open(path, "wb") as f:
                Image.fromarray(mask.astype(np.uint8) * 255).save(f, format="PNG")
            if not mask.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            area = int(mask_utils.area(rle))
            records.append(
                {"obj_id": obj_id, "segmentation": rle, "area": area, "bbox": [x, y, w, h]}
            )
        self.rles[frame_idx] = records
        height, width = self.size
        document = {"frame": frame_idx, "height": height, "width": width, "objects": records}
        write_json(os.path.join(self.rle_dir, f"{frame_idx:05d}.json"), document)


def write_preview(
    frames: Any,
    rles: dict[int, list[dict[str, Any]]],
    path: str,
    *,
    fps: float,
    gif: bool = False,
    gif_width: int = 480,
    gif_max_frames: int = 300,
) -> None:
    """Draw each frame's objects (masks, "#id" labels, one colour per id) into an MP4, and a
    GIF beside it when asked. `frames` is the video's `VideoFrames`; `rles` its records."""
    import pycocotools.mask as mask_utils
    from PIL import Image

    from masktron.data.video import VideoWriter
    from masktron.utils.file_io import atomic_open
    from masktron.visualization.colormap import id_color
    from masktron.visualization.visualizer import Visualizer

    height, width = frames.video_height, frames.video_width
    gif_frames: list[Image.Image] = []
    with VideoWriter(path, fps=fps, width=width, height=height) as video:
        for frame_idx in sorted(rles):
            rgb = frames.original(frame_idx)
            records = rles[frame_idx]
            drawn = rgb
            if records:
                masks = np.stack([mask_utils.decode(r["segmentation"]) for r in records]) > 0
                ids = [int(r["obj_id"]) for r in records]
                drawn = (
                    Visualizer(rgb)
                    .overlay_instances(
                        masks=masks,
                        labels=[f"#{i}" for i in ids],
                        assigned_colors=[id_color(i) / 255.0 for i in ids],
                    )
                    .get_image()
                )
            video.write(np.ascontiguousarray(drawn[:, :, ::-1]))  # RGB -> BGR
            if gif and len(gif_frames) < gif_max_frames:
                scale = min(1.0, gif_width / width)
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                small = Image.fromarray(drawn).resize(size, Image.Resampling.BILINEAR)
                gif_frames.append(small.quantize(colors=256))  # 8 bits per pixel
    if gif and gif_frames:
        gif_path = os.path.splitext(path)[0] + ".gif"
        with atomic_open(gif_path, "wb") as f:
            gif_frames[0].save(
                f,
                format="GIF",
                save_all=True,
                append_images=gif_frames[1:],
                duration=max(1, round(1000 / fps)),
                loop=0,
            )

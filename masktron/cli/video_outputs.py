"""What `masktron predict` writes for a video: the drawn MP4, COCO-style JSON, MOT boxes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = ["TrackWriter", "track_labels"]


def track_labels(ids: list[int], classes: list[int], scores: list[float], names: Any) -> list[str]:
    """Labels "#id class score%": the track id first, then Detectron2's class label."""
    from masktron.visualization.visualizer import create_text_labels

    labels = create_text_labels(classes, scores, names) or [""] * len(ids)
    return [f"#{i} {label}" for i, label in zip(ids, labels)]


class TrackWriter:
    """Collect one video's frames and (tracked) instances; write the three outputs.

    The MP4 is encoded as frames come; `close()` finishes it and writes `<name>.json` and, when
    there is a tracker, `<name>_mot.txt`, all atomically.

    Args:
        out_dir: output folder (created).
        info: the source's `VideoInfo` (name, size).
        fps: the output's frame rate (the source's divided by `--every`).
        metadata: class names (`thing_classes`) and dataset ids; may be None.
        tracker: the tracker's name, or None for detections without ids.
        labels: draw class names and scores (the "#id" of a track is always drawn).
    """

    def __init__(
        self,
        out_dir: str,
        info: Any,
        *,
        fps: float,
        metadata: Any,
        tracker: str | None,
        labels: bool = True,
    ):
        from masktron.data.video import VideoWriter

        os.makedirs(out_dir, exist_ok=True)
        self._stem = os.path.join(out_dir, info.name)
        self._info, self._fps, self._tracker = info, fps, tracker
        self._metadata, self._labels = metadata, labels
        self._video = VideoWriter(
            self._stem + ".mp4", fps=fps, width=info.width, height=info.height
        )
        self._images: list[dict] = []
        self._annotations: list[dict] = []
        self._mot_rows: list[tuple] = []
        self.frames = 0
        self._closed = False

    def add(self, frame: Any, instances: Any) -> None:
        """One frame (`VideoFrame`, BGR) and its instances (with `ID` when tracked)."""
        from masktron.evaluation.coco_evaluation import instances_to_coco_json

        self.frames += 1
        image_id = self.frames
        self._video.write(self._draw(frame.image, instances)[:, :, ::-1])  # RGB -> BGR
        h, w = frame.image.shape[:2]
        self._images.append(
            {
                "id": image_id,
                "video_id": 1,
                "frame_id": frame.index,
                "time": round(frame.time, 6),
                "width": w,
                "height": h,
                "file_name": f"{self._info.name}/{frame.index:06d}",
            }
        )
        ids = list(instances.ID) if instances.has("ID") else None
        to_dataset = _dataset_ids(self._metadata)
        areas = _areas(instances)
        for k, record in enumerate(instances_to_coco_json(instances, image_id)):
            record["category_id"] = to_dataset.get(record["category_id"], record["category_id"])
            record["id"] = len(self._annotations) + 1
            record["area"], record["iscrowd"] = areas[k], 0
            if ids is not None:
                record["track_id"] = int(ids[k])
                x, y, bw, bh = record["bbox"]
                row = (frame.index + 1, ids[k], x, y, x + bw, y + bh, record["score"])
                self._mot_rows.append(row)
            self._annotations.append(record)

    def _draw(self, bgr: np.ndarray, instances: Any) -> np.ndarray:
        from masktron.visualization.colormap import id_color
        from masktron.visualization.visualizer import Visualizer

        visualizer = Visualizer(bgr[:, :, ::-1], self._metadata)
        if not instances.has("ID"):
            if not self._labels:
                from masktron.cli.predict import _draw_unlabelled

                return _draw_unlabelled(visualizer, instances).get_image()
            return visualizer.draw_instance_predictions(instances).get_image()
        ids = [int(i) for i in instances.ID]
        classes = [int(c) for c in torch.as_tensor(instances.pred_classes).tolist()]
        scores = torch.as_tensor(instances.scores).tolist()
        names = self._metadata.get("thing_classes") if self._metadata is not None else None
        masks = instances.pred_masks if instances.has("pred_masks") else None
        return visualizer.overlay_instances(
            boxes=instances.pred_boxes,
            labels=track_labels(ids, classes, scores, names)
            if self._labels
            else [f"#{i}" for i in ids],
            masks=masks,
            assigned_colors=[id_color(i) / 255.0 for i in ids],  # one colour per id, every frame
        ).get_image()

    def close(self) -> None:
        """Finish the MP4 (dropped if no frame came) and write the JSON and MOT files."""
        from masktron.tracking.mot import write_mot_txt
        from masktron.utils.file_io import write_json

        if self._closed:
            return
        self._closed = True
        if self.frames:
            self._video.close()
        else:
            self._video.abort()
        info = self._info
        video = {"id": 1, "name": info.name, "width": info.width, "height": info.height}
        result = {
            "info": {"tracker": self._tracker, "fps": self._fps},
            "videos": [video | {"fps": self._fps}],
            "images": self._images,
            "annotations": self._annotations,
            "categories": _categories(self._metadata),
        }
        write_json(self._stem + ".json", result)
        if self._tracker is not None:
            write_mot_txt(self._stem + "_mot.txt", self._mot_rows)


def _dataset_ids(metadata: Any) -> dict[int, int]:
    mapping = metadata.get("thing_dataset_id_to_contiguous_id") if metadata is not None else None
    return {v: k for k, v in mapping.items()} if mapping else {}


def _categories(metadata: Any) -> list[dict]:
    names = metadata.get("thing_classes") if metadata is not None else None
    to_dataset = _dataset_ids(metadata)
    return [{"id": to_dataset.get(k, k), "name": n} for k, n in enumerate(names or [])]


def _areas(instances: Any) -> list[float]:
    if instances.has("pred_masks"):
        masks = torch.as_tensor(getattr(instances.pred_masks, "tensor", instances.pred_masks))
        return (masks > 0.5).flatten(1).sum(1).float().tolist() if len(masks) else []
    boxes = getattr(instances.pred_boxes, "tensor", instances.pred_boxes)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    return (wh[:, 0] * wh[:, 1]).tolist()

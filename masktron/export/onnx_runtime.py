"""Running an exported detector with onnxruntime and numpy only (no torch).

`OnnxDetector(path)(bgr)` does what `DefaultPredictor(cfg)(bgr)` does around the graph: the
test-time resize (`ResizeShortestEdge`, PIL bilinear on uint8, sizes rounded by `int(x + 0.5)`),
the channel order, and the post-processing of `detector_postprocess`: boxes scaled to the
original image in x and y, clipped, empty ones dropped, masks pasted with Detectron2's
rule (bilinear `grid_sample` at pixel centres, zero outside the box's map, `>= 0.5`); for
Panoptic FPN the semantic logits resized bilinearly and the panoptic merge.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "OnnxDetector",
    "combine_panoptic",
    "paste_masks",
    "resize_bilinear",
    "resize_shortest_edge",
]

FORMAT = "masktron-detector/1"
THINGS_LABEL = 0  # the semantic class standing for "any thing" (Panoptic FPN)


def resize_shortest_edge(image: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> resized so the short side is `min_size` and the long side at most
    `max_size`, as `ResizeShortestEdge` at test time (PIL bilinear, antialiased when shrinking)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = min_size / min(h, w)
    new_h, new_w = (min_size, scale * w) if h < w else (scale * h, min_size)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    size = (int(new_w + 0.5), int(new_h + 0.5))
    if size == (w, h):
        return image
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BILINEAR)
    )


def _grid_weights(start: np.ndarray, end: np.ndarray, lo: int, hi: int, side: int) -> np.ndarray:
    """(N, hi - lo, side) weights that sample a `side`-long map laid over [start, end] at
    pixel centres lo + 0.5 ... (`grid_sample`, bilinear, align_corners=False, zero padding)."""
    centres = np.arange(lo, hi, dtype=np.float32) + np.float32(0.5)
    grid = (centres[None] - start[:, None]) / (end - start)[:, None] * 2 - 1  # (N, P) in [-1, 1]
    src = ((grid + 1) * side - 1) / 2  # grid_sample's unnormalisation
    left = np.floor(src)
    frac = (src - left).astype(np.float32)
    left = left.astype(np.int64)
    weights = np.zeros((*src.shape, side), np.float32)
    n, p = np.indices(src.shape)
    for offset, weight in ((0, 1 - frac), (1, frac)):
        index = left + offset
        inside = (index >= 0) & (index < side)
        weights[n[inside], p[inside], index[inside]] = weight[inside]
    return weights


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, int], threshold: float = 0.5
) -> np.ndarray:
    """Paste (N, M, M) box-frame probabilities into (N, H, W) bool masks (Detectron2's rule,
    `masktron.layers.paste_masks_in_image`): each over its box +-1 pixel, clipped to the image.

    Args:
        masks: (N, M, M) probabilities; boxes: (N, 4) XYXY in the output image's pixels.
        image_shape: (H, W) of the output image.
    """
    img_h, img_w = image_shape
    out = np.zeros((len(masks), img_h, img_w), bool)
    boxes = boxes.astype(np.float32)
    for i, (mask, box) in enumerate(zip(masks.astype(np.float32), boxes)):
        x0 = max(int(np.floor(box[0])) - 1, 0)
        y0 = max(int(np.floor(box[1])) - 1, 0)
        x1 = min(int(np.ceil(box[2])) + 1, img_w)
        y1 = min(int(np.ceil(box[3])) + 1, img_h)
        if x1 <= x0 or y1 <= y0:
            continue
        wy = _grid_weights(box[1:2], box[3:4], y0, y1, mask.shape[0])[0]  # (h, M)
        wx = _grid_weights(box[0:1], box[2:3], x0, x1, mask.shape[1])[0]  # (w, M)
        out[i, y0:y1, x0:x1] = (wy @ mask @ wx.T) >= threshold
    return out


def _linear_indices(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weight of the second one, for `interpolate(bilinear,
    align_corners=False)` from `size_in` to `size_out` samples along one axis."""
    scale = np.float32(size_in / size_out)
    src = np.maximum((np.arange(size_out, dtype=np.float32) + 0.5) * scale - 0.5, 0)
    i0 = np.minimum(src.astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) -> (C, H, W), PyTorch's bilinear `interpolate` with `align_corners=False`."""
    y0, y1, fy = _linear_indices(x.shape[1], size[0])
    x0, x1, fx = _linear_indices(x.shape[2], size[1])
    rows = x[:, y0] * (1 - fy)[None, :, None] + x[:, y1] * fy[None, :, None]  # (C, H, w)
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx  # (C, H, W)


def combine_panoptic(
    scores: np.ndarray,
    classes: np.ndarray,
    masks: np.ndarray,
    semantic: np.ndarray,
    *,
    overlap_thresh: float,
    stuff_area_thresh: float,
    instances_score_thresh: float,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """`masktron.models.panoptic_fpn.combine_semantic_and_instance_outputs` on numpy arrays:
    (N,) scores and classes, (N, H, W) bool masks, (H, W) semantic class per pixel ->
    (H, W) int32 segment ids and the segments' dicts."""
    panoptic = np.zeros(semantic.shape, np.int32)
    segments: list[dict[str, Any]] = []
    for idx in np.argsort(-scores, kind="stable"):
        score = float(scores[idx])
        if score < instances_score_thresh:
            break
        mask = masks[idx]
        area = int(mask.sum())
        if area == 0:
            continue
        taken_area = int((mask & (panoptic > 0)).sum())
        if taken_area / area > overlap_thresh:
            continue
        if taken_area > 0:
            mask = mask & (panoptic == 0)
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append(
            {
                "id": segment_id,
                "isthing": True,
                "score": score,
                "category_id": int(classes[idx]),
                "instance_id": int(idx),
            }
        )
    for label in np.unique(semantic).tolist():
        if label == THINGS_LABEL:
            continue
        mask = (semantic == label) & (panoptic == 0)
        area = int(mask.sum())
        if area < stuff_area_thresh:
            continue
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append({"id": segment_id, "isthing": False, "category_id": label, "area": area})
    return panoptic, segments


class OnnxDetector:
    """An exported detector (`masktron export --config ... --format onnx`) in onnxruntime.

    Args:
        path: the `.onnx` file.
        providers: onnxruntime execution providers (default: CPU).

    Attributes:
        metadata: the dataset metadata stored at export (class names, colours, id maps).
        score_thresh: the graph's score threshold; `__call__` can only raise it.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None):
        import onnxruntime as ort

        self.path = os.fspath(path)
        self.session = ort.InferenceSession(
            self.path, providers=providers or ["CPUExecutionProvider"]
        )
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("masktron.format") != FORMAT:
            raise ValueError(
                f"{self.path}: not a masktron detector export (metadata 'masktron.format' is "
                f"{props.get('masktron.format')!r}, expected {FORMAT!r})"
            )
        self.meta_architecture = props["masktron.meta_architecture"]
        self.input_format = props["masktron.input_format"]
        resize = json.loads(props["masktron.resize"])
        self.min_size, self.max_size = int(resize["min_size"]), int(resize["max_size"])
        self.score_thresh = float(props["masktron.score_thresh"])
        self.mask_threshold = float(props.get("masktron.mask_threshold", "0.5"))
        self.panoptic = (
            json.loads(props["masktron.panoptic"]) if "masktron.panoptic" in props else None
        )
        self.metadata = json.loads(props.get("masktron.metadata", "{}"))
        for key in ("thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id"):
            if key in self.metadata:
                self.metadata[key] = {int(k): int(v) for k, v in self.metadata[key]}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def preprocess(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> the graph's (1, 3, h, w) float32 input."""
        image = np.asarray(bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 BGR image, got shape {image.shape} {image.dtype}"
            )
        if self.input_format == "RGB":
            image = image[:, :, ::-1]
        resized = resize_shortest_edge(image, self.min_size, self.max_size)
        return resized.astype(np.float32).transpose(2, 0, 1)[None]  # (h, w, 3) -> (1, 3, h, w)

    def __call__(self, bgr: np.ndarray, score_thresh: float | None = None) -> dict[str, Any]:
        """Detections on the original image.

        Args:
            bgr: (H, W, 3) uint8 BGR image.
            score_thresh: keep scores above this (at least the graph's `score_thresh`); for
                Panoptic FPN also the merge's instance threshold, as `masktron predict --conf`.

        Returns:
            `boxes` (N, 4) float32 XYXY, `scores` (N,), `classes` (N,) int64, in original
            pixels; `masks` (N, H, W) bool for mask models; for Panoptic FPN also `sem_seg`
            (C, H, W) float32 logits and `panoptic_seg` ((H, W) int32 ids, segments).
        """
        height, width = bgr.shape[:2]
        image = self.preprocess(bgr)
        out = dict(zip(self.output_names, self.session.run(None, {"image": image})))
        if score_thresh is not None and score_thresh < self.score_thresh:
            raise ValueError(
                f"score threshold {score_thresh} is below the {self.score_thresh} exported in "
                f"{self.path}; export again with a lower MODEL.*.SCORE_THRESH_TEST"
            )
        keep = out["scores"] > (self.score_thresh if score_thresh is None else score_thresh)
        boxes = out["boxes"][keep].astype(np.float32)
        h, w = image.shape[2:]
        boxes[:, 0::2] *= np.float32(width / w)
        boxes[:, 1::2] *= np.float32(height / h)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        keep = np.flatnonzero(keep)[nonempty]
        result: dict[str, Any] = {
            "boxes": boxes[nonempty],
            "scores": out["scores"][keep],
            "classes": out["classes"][keep].astype(np.int64),
        }
        if "masks" in out:
            probs = out["masks"][keep, 0]  # (N, 1, M, M) -> (N, M, M)
            result["masks"] = paste_masks(
                probs, result["boxes"], (height, width), self.mask_threshold
            )
        if "sem_seg" in out:
            sem_seg = resize_bilinear(out["sem_seg"][0], (height, width))
            result["sem_seg"] = sem_seg
            assert self.panoptic is not None, "a sem_seg output without panoptic metadata"
            combine = dict(self.panoptic)
            if score_thresh is not None:
                combine["instances_score_thresh"] = score_thresh
            result["panoptic_seg"] = combine_panoptic(
                result["scores"],
                result["classes"],
                result["masks"],
                sem_seg.argmax(axis=0),
                **combine,
            )
        return result

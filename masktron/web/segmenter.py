"""SAM behind the page: one embedding per image, then a fast decode per click.

The image encoder runs once per image (seconds on a CPU for ViT-B/H); its progress is counted
block by block so the page can show it. Each click or box then runs only the prompt encoder
and mask decoder (tens of milliseconds). One lock serialises the model: requests arrive on
several server threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from masktron.models.sam import Sam
from masktron.predictors.sam_predictor import SamPredictor

IMAGES_KEPT = 4  # decoded images and embeddings kept for going back and forth


class PromptError(ValueError):
    """Points or a box that SAM cannot take (the message names the field)."""


def parse_prompt(body: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """`{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] | null}` from the page,
    checked: pixel coordinates inside the image, labels 1 (object) or 0 (background)."""
    points = body.get("points") or []
    box = body.get("box")
    if not isinstance(points, list) or len(points) > 100:
        raise PromptError("'points' must be a list of at most 100 [x, y, label]")
    clean_points = []
    for i, p in enumerate(points):
        ok = isinstance(p, list) and len(p) == 3 and all(_is_number(v) for v in p)
        if not ok or p[2] not in (0, 1):
            raise PromptError(f"points[{i}] must be [x, y, label] with label 1 or 0, got {p!r}")
        if not (0 <= p[0] <= width and 0 <= p[1] <= height):
            raise PromptError(f"points[{i}] = {p[:2]} lies outside the {width}x{height} image")
        clean_points.append([float(p[0]), float(p[1]), int(p[2])])
    clean_box = None
    if box is not None:
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise PromptError(f"'box' must be [x0, y0, x1, y1], got {box!r}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x0 < x1 and y0 < y1):
            raise PromptError(f"'box' {box} is empty (need x0 < x1 and y0 < y1)")
        clean_box = [x0, y0, x1, y1]
    if not clean_points and clean_box is None:
        raise PromptError("give at least one point or a box")
    return {"points": clean_points, "box": clean_box}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def predict_prompt(predictor: SamPredictor, prompt: dict[str, Any]) -> tuple[np.ndarray, float]:
    """SAM's mask for a checked prompt on the predictor's image, as the page shows it.

    A lone point is ambiguous: SAM gives 3 masks and the one with the best predicted IoU is
    kept (as `masktron sam` does); other prompts ask for one mask.

    Returns:
        (H, W) bool mask and its predicted IoU.
    """
    points = np.array([p[:2] for p in prompt["points"]], dtype=np.float64).reshape(-1, 2)
    labels = np.array([p[2] for p in prompt["points"]], dtype=np.int64)
    box = None if prompt["box"] is None else np.array(prompt["box"], dtype=np.float64)
    multimask = len(points) == 1 and box is None
    masks, ious, _ = predictor.predict(
        point_coords=points if len(points) else None,
        point_labels=labels if len(points) else None,
        box=box,
        multimask_output=multimask,
    )
    best = int(np.argmax(ious))
    return masks[best], float(ious[best])


class Segmenter:
    """SAM's predictor with per-image embeddings, progress, and "segment everything".

    Args:
        model: a SAM model on its device.
        load_image: file name -> (H, W, 3) uint8 RGB array.
        auto_options: keyword arguments of `SamAutomaticMaskGenerator`.
    """

    def __init__(
        self,
        model: Sam,
        load_image: Callable[[str], np.ndarray],
        *,
        auto_options: dict[str, Any] | None = None,
    ) -> None:
        self.predictor = SamPredictor(model, cache_size=IMAGES_KEPT)
        self.load_image = load_image
        self.auto_options = dict(auto_options or {})
        self.lock = threading.Lock()
        self._current: str | None = None
        self._embedded: OrderedDict[str, None] = OrderedDict()
        encoder = model.image_encoder
        self._stages: Sequence[torch.nn.Module] = [encoder.patch_embed, *encoder.blocks]
        self.progress: dict[str, Any] = {"image": None, "done": 0, "total": len(self._stages)}
        for stage in self._stages:
            stage.register_forward_hook(self._count_stage)

    def _count_stage(self, *_: Any) -> None:
        self.progress["done"] += 1

    def is_embedded(self, image: str) -> bool:
        return image in self._embedded

    def _set(self, image: str) -> None:
        """Make `image` the predictor's image (lock held); encodes it when not cached."""
        if self._current == image:
            return
        pixels = self.load_image(image)
        self.progress.update(image=image, done=0)
        self.predictor.set_image(pixels)
        self.progress["done"] = self.progress["total"]
        self._current = image
        self._embedded[image] = None
        self._embedded.move_to_end(image)
        while len(self._embedded) > IMAGES_KEPT:
            self._embedded.popitem(last=False)

    def embed(self, image: str) -> float:
        """Compute (or reuse) the embedding of `image`; returns the seconds it took."""
        start = time.perf_counter()
        with self.lock:
            self._set(image)
        return time.perf_counter() - start

    def decode(self, image: str, prompt: dict[str, Any]) -> tuple[np.ndarray, float, float]:
        """Mask, predicted IoU and decode seconds for a prompt checked by `parse_prompt`."""
        with self.lock:
            self._set(image)
            start = time.perf_counter()
            mask, score = predict_prompt(self.predictor, prompt)
            return mask, score, time.perf_counter() - start

    def segment_everything(self, image: str) -> list[dict[str, Any]]:
        """SAM's automatic masks of `image` (records of `SamAutomaticMaskGenerator`)."""
        from masktron.predictors.auto_mask import SamAutomaticMaskGenerator

        with self.lock:
            pixels = self.load_image(image)
            generator = SamAutomaticMaskGenerator(self.predictor, **self.auto_options)
            try:
                return generator.generate(pixels)
            finally:
                self._current = None  # the generator resets the predictor's image

"""Test-time augmentation for R-CNN models (Detectron2's `GeneralizedRCNNWithTTA`).

Each image is run at every `TEST.AUG.MIN_SIZES` shortest side (longest side capped at
`TEST.AUG.MAX_SIZE`), and also flipped when `TEST.AUG.FLIP`. Boxes from all versions are mapped
back to the original image and merged: each keeps its own class and score, then per-class NMS
(`ROI_HEADS.NMS_THRESH_TEST`) and top `TEST.DETECTIONS_PER_IMAGE`. Masks are then predicted for
the merged boxes in every version and their M x M probabilities averaged (un-flipped first).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from masktron.data import transforms as T
from masktron.data.image_io import read_image
from masktron.models.postprocessing import detector_postprocess
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.roi_heads.box_head import fast_rcnn_inference
from masktron.structures import Boxes, Instances


class DatasetMapperTTA:
    """One input dict -> its augmented versions, each with the `transforms` that map the
    original image to it.

    Args:
        min_sizes: shortest-side sizes to resize to.
        max_size: cap on the longest side.
        flip: also give a horizontally flipped version of each size.
    """

    def __init__(self, cfg: Any = None, *, min_sizes=None, max_size=None, flip=None):
        if cfg is not None:
            min_sizes, max_size, flip = self.from_config(cfg).values()
        if min_sizes is None or max_size is None or flip is None:
            raise TypeError("DatasetMapperTTA needs a config or min_sizes, max_size and flip")
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = int(max_size)
        self.flip = bool(flip)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        aug = cfg.TEST.AUG
        return {"min_sizes": aug.MIN_SIZES, "max_size": aug.MAX_SIZE, "flip": aug.FLIP}

    def __call__(self, dataset_dict: dict) -> list[dict]:
        """Args: dataset_dict with `image` (C, H, W) and the original `height`, `width`.

        Returns:
            one dict per version: a deep copy with the augmented `image` and `transforms`.
        """
        image = dataset_dict["image"].permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
        orig_shape = (dataset_dict["height"], dataset_dict["width"])
        pre: T.Transform = T.NoOpTransform()
        if image.shape[:2] != orig_shape:  # the input was resized already: start from the original
            pre = T.ResizeTransform(*orig_shape, *image.shape[:2])
        candidates: list[list[T.Augmentation]] = []
        for size in self.min_sizes:
            resize = T.ResizeShortestEdge(size, self.max_size)
            candidates.append([resize])
            if self.flip:
                candidates.append([resize, T.RandomFlip(prob=1.0)])
        out = []
        for augs in candidates:
            aug_input = T.AugInput(np.copy(image))
            tfms = aug_input.apply_augmentations(augs)
            new_image = aug_input.image
            d = copy.deepcopy(dataset_dict)
            d["transforms"] = T.TransformList([pre, tfms])
            # (H, W, C) -> (C, H, W)
            d["image"] = torch.from_numpy(np.ascontiguousarray(new_image.transpose(2, 0, 1)))
            out.append(d)
        return out


class GeneralizedRCNNWithTTA(nn.Module):
    """Run a `GeneralizedRCNN` with test-time augmentation; called like the model in
    inference (a list of input dicts -> a list of `{"instances": Instances}`).

    Args:
        cfg: reads `TEST.AUG.*`, `MODEL.MASK_ON`, `ROI_HEADS.NUM_CLASSES`,
            `ROI_HEADS.NMS_THRESH_TEST`, `TEST.DETECTIONS_PER_IMAGE`.
        model: the R-CNN (keypoint models and precomputed proposals are not supported).
        tta_mapper: makes the augmented inputs; default `DatasetMapperTTA(cfg)`.
        batch_size: augmented versions run per forward pass.
    """

    def __init__(
        self,
        cfg: Any,
        model: nn.Module,
        tta_mapper: Any = None,
        batch_size: int = 3,
    ):
        super().__init__()
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(f"TTA runs GeneralizedRCNN models, got {type(model).__name__}")
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError("test-time augmentation of keypoints is not supported")
        if model.proposal_generator is None:
            raise ValueError("test-time augmentation with precomputed proposals is not supported")
        self.cfg = cfg.clone()
        self.model = model
        self.tta_mapper = DatasetMapperTTA(cfg) if tta_mapper is None else tta_mapper
        self.batch_size = batch_size

    @contextmanager
    def _turn_off_roi_heads(self, attrs: Sequence[str]) -> Iterator[None]:
        """Temporarily switch off the named heads (e.g. `mask_on`) of the RoI heads."""
        heads = self.model.roi_heads
        old = {a: getattr(heads, a) for a in attrs if hasattr(heads, a)}
        for a in old:
            setattr(heads, a, False)
        try:
            yield
        finally:
            for a, v in old.items():
                setattr(heads, a, v)

    def _batch_inference(
        self, inputs: list[dict], detected: list[Instances] | None = None
    ) -> list[Instances]:
        """Raw (not post-processed) outputs, `batch_size` inputs at a time."""
        outputs: list[Instances] = []
        for i in range(0, len(inputs), self.batch_size):
            chunk = inputs[i : i + self.batch_size]
            given = None if detected is None else detected[i : i + self.batch_size]
            outputs.extend(self.model.inference(chunk, given, do_postprocess=False))
        return outputs

    def __call__(self, batched_inputs: list[dict]) -> list[dict[str, Instances]]:  # type: ignore[override]
        """Args: input dicts with `image` (or `file_name`) and optionally `height`, `width`."""
        return [self._inference_one_image(self._with_image(x)) for x in batched_inputs]

    def _with_image(self, dataset_dict: dict) -> dict:
        d = copy.copy(dataset_dict)
        if "image" not in d:
            image = read_image(d.pop("file_name"), self.model.input_format)
            d["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if "height" not in d and "width" not in d:
            d["height"], d["width"] = d["image"].shape[1], d["image"].shape[2]
        return d

    def _inference_one_image(self, inputs: dict) -> dict[str, Instances]:
        orig_shape = (inputs["height"], inputs["width"])
        augmented = self.tta_mapper(inputs)
        tfms = [x.pop("transforms") for x in augmented]
        with self._turn_off_roi_heads(["mask_on", "keypoint_on"]):
            boxes, scores, classes = self._augmented_boxes(augmented, tfms)
        merged = self._merge_detections(boxes, scores, classes, orig_shape)
        if not self.cfg.MODEL.MASK_ON:
            return {"instances": merged}
        given = self._rescale_detected_boxes(augmented, merged, tfms)
        outputs = self._batch_inference(augmented, given)
        merged.pred_masks = self._reduce_pred_masks(outputs, tfms)
        return {"instances": detector_postprocess(merged, *orig_shape)}

    def _augmented_boxes(
        self, augmented: list[dict], tfms: list[T.TransformList]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every version's detections, boxes mapped back to the original image."""
        outputs = self._batch_inference(augmented)
        boxes, scores, classes = [], [], []
        for out, tfm in zip(outputs, tfms):
            b = out.pred_boxes.tensor
            original = tfm.inverse().apply_box(b.detach().cpu().numpy())
            boxes.append(torch.from_numpy(np.asarray(original)).to(b.device, torch.float32))
            scores.append(out.scores)
            classes.append(out.pred_classes)
        return torch.cat(boxes), torch.cat(scores), torch.cat(classes)

    def _merge_detections(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        classes: torch.Tensor,
        shape_hw: tuple[int, int],
    ) -> Instances:
        """Per-class NMS over the union: each box scores only its own class (the background
        column, which inference drops, stays 0); a score threshold of 1e-8 keeps them all."""
        num_classes = self.cfg.MODEL.ROI_HEADS.NUM_CLASSES
        scores_2d = torch.zeros(len(boxes), num_classes + 1, device=boxes.device)
        scores_2d[torch.arange(len(boxes), device=boxes.device), classes] = scores
        (merged,), _ = fast_rcnn_inference(
            [boxes],
            [scores_2d],
            [shape_hw],
            score_thresh=1e-8,
            nms_thresh=self.cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            topk_per_image=self.cfg.TEST.DETECTIONS_PER_IMAGE,
        )
        return merged

    def _rescale_detected_boxes(
        self, augmented: list[dict], merged: Instances, tfms: list[T.TransformList]
    ) -> list[Instances]:
        """The merged detections in each version's frame, for the mask head."""
        out = []
        for inputs, tfm in zip(augmented, tfms):
            b = tfm.apply_box(merged.pred_boxes.tensor.detach().cpu().numpy())
            out.append(
                Instances(
                    tuple(inputs["image"].shape[1:3]),
                    pred_boxes=Boxes(torch.from_numpy(np.asarray(b, dtype=np.float32))),
                    pred_classes=merged.pred_classes,
                    scores=merged.scores,
                )
            )
        return out

    @staticmethod
    def _reduce_pred_masks(outputs: list[Instances], tfms: list[T.TransformList]) -> torch.Tensor:
        """Mean of the versions' (R, 1, M, M) mask probabilities; a box-relative mask only
        needs un-flipping (resizes do not change it)."""
        masks = []
        for out, tfm in zip(outputs, tfms):
            m = out.pred_masks
            if any(isinstance(t, T.HFlipTransform) for t in tfm.transforms):
                m = m.flip(dims=[3])
            masks.append(m)
        return torch.stack(masks).mean(dim=0)

"""`SAM2ImagePredictor`: embed an image once with SAM 2, then predict masks for many prompts.

Same API, argument names, return types and shapes as Meta's `sam2.sam2_image_predictor`, plus
prompt validation with errors that name the field, an optional embedding cache and bounded memory
for many prompts (decoded and up-sampled in chunks).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from masktron.models.sam.prompts import check_image, check_many_prompts
from masktron.predictors.sam2_transforms import SAM2Transforms
from masktron.predictors.sam_predictor import DECODE_CHUNK, _image_key, check_image_index

# Masks up-sampled to the image at once (a 1024x1024 float mask is 4 MiB).
_UPSAMPLE_CHUNK = 16
_Features = dict[str, Any]
_HF_SIZES = {"tiny": "t", "small": "s", "base-plus": "b+", "large": "l"}


def _encoder_layout(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features laid out in memory as the encoder returns them, (h, w, B, C), so
    that cached embeddings give the decoder bit-identical results to a fresh encode."""
    return features.permute(2, 3, 0, 1).contiguous().permute(2, 3, 0, 1)  # (B, C, h, w) view


class SAM2ImagePredictor:
    """Repeated mask prediction on one image (or a batch of images) with a SAM 2 model.

    Args:
        sam_model: a `SAM2Base` (any device; inputs follow it).
        mask_threshold: logit threshold of the binary masks.
        max_hole_area, max_sprinkle_area: fill holes / remove islands of at most this many
            low-res (256 x 256) pixels before up-sampling (0: off, Meta's default). Meta does it
            with its optional CUDA extension (without it, Meta's package warns and skips it);
            masktron does it with torch ops on every device.
        cache_size: keep the embeddings of this many recent images; setting an image whose
            pixels equal a cached one skips the encoder (0: no cache). Assumes fixed weights.
    """

    def __init__(
        self,
        sam_model: Any,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        *,
        cache_size: int = 0,
    ) -> None:
        self.model = sam_model
        self._transforms = SAM2Transforms(
            resolution=sam_model.image_size,
            mask_threshold=mask_threshold,
            max_hole_area=max_hole_area,
            max_sprinkle_area=max_sprinkle_area,
        )
        self.mask_threshold = mask_threshold
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[_Features, tuple[int, int]]] = OrderedDict()
        self.reset_predictor()

    @classmethod
    def from_pretrained(
        cls, model_id: str, *, device: str | torch.device = "cpu", **kwargs: Any
    ) -> SAM2ImagePredictor:
        """A predictor of Meta's released weights, downloaded once into masktron's cache.

        Args:
            model_id: Meta's Hugging Face id (`facebook/sam2.1-hiera-large`, `facebook/sam2-hiera-
                tiny`, ...) or a variant name (`sam2.1_hiera_l`); the files are Meta's own.
            device: where the model goes.
            **kwargs: the predictor's arguments (`mask_threshold`, `cache_size`, ...).
        """
        return cls(build_pretrained_sam2(model_id, device=device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def num_images(self) -> int:
        """Images whose embeddings are set (0 after `reset_predictor`)."""
        return 0 if self._features is None else int(self._features["image_embed"].shape[0])

    @property
    def is_image_set(self) -> bool:
        """Whether an image (or batch) is set (`SamPredictor`'s name)."""
        return self._is_image_set

    @property
    def original_sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each set image (`SamPredictor`'s name)."""
        return list(self._orig_hw)

    def reset_predictor(self) -> None:
        """Forget the current image(s) and their embeddings."""
        self._is_image_set = False
        self._features: _Features | None = None
        self._orig_hw: list[tuple[int, int]] = []
        self._is_batch = False

    # ------------------------------------------------------------------ images
    def set_image(self, image: Any, *, image_format: str = "RGB") -> None:
        """Compute the embedding of one image.

        Args:
            image: (H, W, 3) uint8 array, or a PIL image.
            image_format: "RGB" (SAM 2's order) or "BGR" (channels are flipped first).
        """
        self._set_images([image], image_format, "image")

    def set_image_batch(self, image_list: Sequence[Any], *, image_format: str = "RGB") -> None:
        """Compute the embeddings of several images in one encoder pass (for `predict_batch`).

        Args:
            image_list: (H_i, W_i, 3) uint8 arrays (or PIL images); sizes may differ.
            image_format: "RGB" or "BGR", for every image.
        """
        if len(image_list) == 0:
            raise ValueError("set_image_batch needs at least one image")
        self._set_images(list(image_list), image_format, "image_list")
        self._is_batch = True

    @torch.no_grad()
    def _set_images(self, images: list[Any], image_format: str, name: str) -> None:
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        rgb = []
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) and hasattr(image, "convert"):
                image = np.asarray(image.convert("RGB"))  # PIL image
            check_image(image, f"{name}[{i}]" if name == "image_list" else name)
            rgb.append(np.ascontiguousarray(image[..., ::-1] if image_format == "BGR" else image))
        self.reset_predictor()
        orig_hw = [(int(im.shape[0]), int(im.shape[1])) for im in rgb]
        keys = [_image_key(im, self.device) for im in rgb] if self.cache_size > 0 else []
        if keys and all(k in self._cache for k in keys):
            for k in keys:
                self._cache.move_to_end(k)
            parts = [self._cache[k][0] for k in keys]
            self._features = {
                "image_embed": _encoder_layout(torch.cat([p["image_embed"] for p in parts])),
                "high_res_feats": [
                    _encoder_layout(torch.cat([p["high_res_feats"][level] for p in parts]))
                    for level in range(len(parts[0]["high_res_feats"]))
                ],
            }
        else:
            self._features = self._encode(self._transforms.forward_batch(rgb).to(self.device))
            for i, k in enumerate(keys):
                self._cache[k] = (self._image_features(i), orig_hw[i])
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self._orig_hw = orig_hw
        self._is_image_set = True

    def _encode(self, batch: torch.Tensor) -> _Features:
        """(B, 3, R, R) normalised images -> image embeddings and high-res decoder features."""
        backbone_out = self.model.forward_image(batch)
        _, vision_feats, _, feat_sizes = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            # SAM 2 was trained on videos: a frame without memory gets the "no memory" embedding
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        b = batch.shape[0]
        feats = [
            feat.permute(1, 2, 0).reshape(b, -1, *size)  # (h*w, B, C) -> (B, C, h, w)
            for feat, size in zip(vision_feats, feat_sizes)
        ]
        return {"image_embed": feats[-1], "high_res_feats": feats[:-1]}

    def _image_features(self, img_idx: int) -> _Features:
        """Features of one set image, each with a batch dimension of 1."""
        assert self._features is not None
        i = img_idx % self.num_images
        return {
            "image_embed": self._features["image_embed"][i : i + 1],
            "high_res_feats": [f[i : i + 1] for f in self._features["high_res_feats"]],
        }

    def get_image_embedding(self) -> torch.Tensor:
        """The embedding(s) of the set image(s): (B, 256, 64, 64) float32."""
        if not self._is_image_set or self._features is None:
            raise RuntimeError(
                "An image must be set with .set_image(...) to generate an embedding."
            )
        return self._features["image_embed"]

    def _image_index(self, image_index: int | None) -> int:
        return check_image_index(self._is_image_set, self.num_images, image_index)

    # ----------------------------------------------------------------- prompts
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        *,
        image_index: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt (or K prompts at once), in the original image frame.

        Args:
            point_coords: (N, 2) XY points, or (K, N, 2) for K prompts (labels -1 pad).
            point_labels: (N,) or (K, N): 1 = foreground, 0 = background.
            box: (4,) XYXY box, or (K, 4) for K prompts (one mask set each).
            mask_input: (1, 256, 256) low-res logits of a previous prediction, or (K, 1, 256, 256).
            multimask_output: 3 masks for ambiguous prompts instead of 1.
            return_logits: return logits instead of 0/1 masks.
            normalize_coords: coordinates are pixels of the original image (True) or already
                in [0, 1] relative to its width and height (False).
            image_index: which image of `set_image_batch` (None when one image is set).

        Returns:
            masks (C, H, W) float32 (0/1, or logits), iou predictions (C,) float32, low-res
            logits (C, 256, 256) float32 clamped to [-32, 32]; with K > 1 prompts each has a
            leading K dimension. C = 3 or 1.
        """
        index = self._image_index(image_index)
        prompts = self._prep_prompts(
            point_coords, point_labels, box, mask_input, normalize_coords, img_idx=index
        )
        mask_t, coords, labels, boxes = prompts
        masks, iou, low_res = self._predict(
            coords, labels, boxes, mask_t, multimask_output, return_logits, img_idx=index
        )
        return _to_numpy(masks), _to_numpy(iou), _to_numpy(low_res)

    def predict_many(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        image_index: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K prompts on one image, as `SamPredictor.predict_many` (masktron's extension).

        Args:
            point_coords: (K, N, 2) XY pixels (labels -1 pad); point_labels: (K, N).
            boxes: (K, 4) XYXY pixels; mask_input: (K, 1, 256, 256) low-res logits.
            multimask_output, return_logits, image_index: as `predict`.

        Returns:
            masks (K, C, H, W) bool (float32 logits if `return_logits`), iou predictions (K, C),
            low-res logits (K, C, 256, 256), with the K dimension even when K = 1.
        """
        index = self._image_index(image_index)
        mask_t, coords, labels, boxes_t = self._prep_prompts(
            point_coords, point_labels, boxes, mask_input, True, img_idx=index
        )
        masks, iou, low_res = self._predict(
            coords, labels, boxes_t, mask_t, multimask_output, return_logits, img_idx=index
        )
        return masks.cpu().numpy(), iou.cpu().numpy(), low_res.cpu().numpy()

    def predict_batch(
        self,
        point_coords_batch: Sequence[np.ndarray | None] | None = None,
        point_labels_batch: Sequence[np.ndarray | None] | None = None,
        box_batch: Sequence[np.ndarray | None] | None = None,
        mask_input_batch: Sequence[np.ndarray | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` on every image of `set_image_batch`; each argument has one entry per image
        (or is None). Returns lists (one entry per image) of masks, iou predictions and low-res
        logits, shaped as `predict`'s."""
        if not self._is_image_set:
            raise RuntimeError(
                "An image must be set with .set_image_batch(...) before mask prediction."
            )
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with .set_image_batch(...)")
        n = self.num_images
        args = {
            "point_coords_batch": point_coords_batch,
            "point_labels_batch": point_labels_batch,
            "box_batch": box_batch,
            "mask_input_batch": mask_input_batch,
        }
        for name, value in args.items():
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")
        out: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for i in range(n):
            coords, labels, box, mask = (v[i] if v is not None else None for v in args.values())
            result = self.predict(
                coords,
                labels,
                box,
                mask,
                multimask_output=multimask_output,
                return_logits=return_logits,
                normalize_coords=normalize_coords,
                image_index=i,
            )
            for store, array in zip(out, result):
                store.append(array)
        return out

    def _prep_prompts(
        self,
        point_coords: Any,
        point_labels: Any,
        box: Any,
        mask_logits: Any,
        normalize_coords: bool,
        img_idx: int = -1,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Validate prompts and move them to the model's input frame.

        Returns:
            mask input (K, 1, 256, 256), point coords (K, N, 2), labels (K, N) and box corners
            (K, 2, 2), each None when not given.
        """
        orig_hw = self._orig_hw[img_idx]
        coords, labels, boxes, masks = _check_prompts(
            point_coords,
            point_labels,
            box,
            mask_logits,
            orig_hw if normalize_coords else (1, 1),
            self.model.sam_prompt_encoder.mask_input_size,
        )
        dev = self.device
        coords_t = labels_t = boxes_t = mask_t = None
        if coords is not None:
            coords_t = torch.as_tensor(coords, dtype=torch.float, device=dev)
            coords_t = self._transforms.transform_coords(coords_t, normalize_coords, orig_hw)
            labels_t = torch.as_tensor(labels, dtype=torch.int, device=dev)
        if boxes is not None:
            boxes_t = torch.as_tensor(boxes, dtype=torch.float, device=dev)
            boxes_t = self._transforms.transform_boxes(boxes_t, normalize_coords, orig_hw)
        if masks is not None:
            mask_t = torch.as_tensor(masks, dtype=torch.float, device=dev)
        return mask_t, coords_t, labels_t, boxes_t

    @torch.no_grad()
    def _predict(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        img_idx: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks for B prompts already in the model's input frame (Meta's `_predict`).

        Args:
            point_coords: (B, N, 2) XY in the input frame; point_labels: (B, N).
            boxes: (B, 4) XYXY or (B, 2, 2) corners in the input frame.
            mask_input: (B, 1, 256, 256) low-res logits.
            multimask_output, return_logits: as `predict`.
            img_idx: which set image (-1: the last, as Meta's).

        Returns:
            masks (B, C, H, W) bool (float32 logits if `return_logits`), iou predictions (B, C),
            low-res logits (B, C, 256, 256) clamped to [-32, 32].
        """
        low_res, iou = self._decode(
            point_coords, point_labels, boxes, mask_input, multimask_output, img_idx
        )
        masks = self._upsample(low_res, img_idx, return_logits)
        return masks, iou, torch.clamp(low_res, -32.0, 32.0)

    def _decode(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
        img_idx: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder + mask decoder, a chunk of prompts at a time.

        Returns:
            low-res logits (B, C, 256, 256) (not clamped) and iou predictions (B, C).
        """
        if not self._is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        sizes = [len(t) for t in (point_coords, boxes, mask_input) if t is not None]
        features = self._image_features(img_idx)
        parts = []
        for s in range(0, max(sizes, default=1), DECODE_CHUNK):
            part = slice(s, s + DECODE_CHUNK)
            points = None
            if point_coords is not None and point_labels is not None:
                points = (point_coords[part], point_labels[part])
            if boxes is not None:
                # a box is two points with labels 2 (top-left) and 3 (bottom-right), put first
                corners = boxes[part].reshape(-1, 2, 2)  # (b, 4) -> (b, 2 corners, xy)
                corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device)
                corner_labels = corner_labels.repeat(len(corners), 1)
                if points is not None:
                    points = (
                        torch.cat([corners, points[0]], 1),
                        torch.cat([corner_labels, points[1]], 1),
                    )
                else:
                    points = (corners, corner_labels)
            sparse, dense = self.model.sam_prompt_encoder(
                points=points, boxes=None, masks=None if mask_input is None else mask_input[part]
            )
            low_res, iou, _, _ = self.model.sam_mask_decoder(
                image_embeddings=features["image_embed"],
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
                repeat_image=points is not None and points[0].shape[0] > 1,
                high_res_features=features["high_res_feats"],
            )
            parts.append((low_res, iou))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _upsample(self, low_res: torch.Tensor, img_idx: int, return_logits: bool) -> torch.Tensor:
        """(B, C, 256, 256) logits -> (B, C, H, W) logits (or bool masks) of image `img_idx`,
        a few masks at a time (booleans are thresholded before the next chunk is up-sampled)."""
        b, c = low_res.shape[:2]
        h, w = self._orig_hw[img_idx]
        flat = low_res.reshape(b * c, 1, *low_res.shape[2:])  # (B, C, h, w) -> (B*C, 1, h, w)
        out = torch.empty(
            (b * c, 1, h, w),
            dtype=torch.float32 if return_logits else torch.bool,
            device=low_res.device,
        )
        for s in range(0, b * c, _UPSAMPLE_CHUNK):
            part = self._transforms.postprocess_masks(flat[s : s + _UPSAMPLE_CHUNK], (h, w))
            out[s : s + _UPSAMPLE_CHUNK] = part if return_logits else part > self.mask_threshold
        return out.reshape(b, c, h, w)  # (B*C, 1, H, W) -> (B, C, H, W)


def pretrained_variant(model_id: str) -> str:
    """Meta's Hugging Face id (`facebook/sam2.1-hiera-base-plus`) -> variant (`sam2.1_hiera_b+`);
    anything else is returned as given."""
    match = re.fullmatch(
        r"(?:facebook/)?(sam2|sam2\.1)-hiera-(tiny|small|base-plus|large)", model_id
    )
    return f"{match[1]}_hiera_{_HF_SIZES[match[2]]}" if match else model_id


def build_pretrained_sam2(model_id: str, *, device: str | torch.device = "cpu") -> Any:
    """The image model of Meta's released checkpoint named by `model_id` (see `from_pretrained`)."""
    from masktron.model_zoo.sam2_checkpoints import SAM2_CHECKPOINTS
    from masktron.models.sam2 import build_sam2

    variant = pretrained_variant(model_id)
    if variant not in SAM2_CHECKPOINTS:
        raise ValueError(
            f"unknown SAM 2 model {model_id!r}; expected a variant ({', '.join(SAM2_CHECKPOINTS)}) "
            "or Meta's id, e.g. facebook/sam2.1-hiera-large"
        )
    return build_sam2(None, SAM2_CHECKPOINTS[variant], device=device, variant=variant)


def _check_prompts(
    point_coords: Any,
    point_labels: Any,
    box: Any,
    mask_input: Any,
    size: Sequence[int],
    mask_size: Sequence[int],
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """One prompt ((N, 2) points, (4,) box, (1, h, w) mask) or K prompts ((K, N, 2), (K, 4),
    (K, 1, h, w)) -> validated K-prompt arrays; None where not given."""
    if point_coords is None and point_labels is None and box is None and mask_input is None:
        return None, None, None, None  # SAM 2 still predicts, from the "no mask" embedding
    if point_coords is not None and point_labels is None:
        raise ValueError("point_labels must be supplied if point_coords is supplied")
    if point_coords is not None and np.ndim(point_coords) == 2:
        point_coords = np.asarray(point_coords)[None]  # (N, 2) -> (1, N, 2)
        point_labels = np.asarray(point_labels)[None]  # (N,) -> (1, N)
        if not np.isin(point_labels, (0, 1)).all():
            raise ValueError(
                f"point_labels must be 1 (foreground) or 0 (background), got {point_labels}"
            )
    if box is not None and np.ndim(box) == 1:
        box = np.asarray(box)[None]  # (4,) -> (1, 4)
    if mask_input is not None and np.ndim(mask_input) == 3:
        mask_input = np.asarray(mask_input)[None]  # (1, h, w) -> (1, 1, h, w)
    return check_many_prompts(point_coords, point_labels, box, mask_input, size, mask_size)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """Meta's output convention: float32, the leading prompt dimension dropped when it is 1."""
    return t.squeeze(0).float().cpu().numpy()

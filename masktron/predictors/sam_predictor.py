"""`SamPredictor`: compute an image embedding once, then predict masks for many prompts.

Same API and behaviour as Meta's `segment_anything.SamPredictor`, plus several images per call
(`set_image_batch`, `predict_batch`), many prompts per call in the original image frame
(`predict_many`), and prompt validation with clear errors.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from masktron.models.sam.prompts import (
    check_image,
    check_many_prompts,
    check_mask_input,
    check_points,
    check_single_box,
    check_torch_prompts,
)
from masktron.models.sam.sam import Sam
from masktron.models.sam.transforms import ResizeLongestSide

# Prompts decoded at once: bounds the decoder's memory (about 25 MB per prompt).
DECODE_CHUNK = 64
# Masks upsampled to the image at once (the 1024x1024 intermediate is 4 MiB per mask).
_UPSAMPLE_CHUNK = 16


class SamPredictor:
    """Efficient repeated mask prediction on one image (or a batch of images).

    Args:
        sam_model: the SAM model (any device; inputs follow it).
        cache_size: keep the embeddings of this many recent images; `set_image` with an image
            whose pixels equal a cached one skips the encoder. 0 disables the cache. The cache
            assumes fixed weights: create a new predictor after changing the model's weights.
    """

    def __init__(self, sam_model: Sam, *, cache_size: int = 0) -> None:
        self.model = sam_model
        self.transform = ResizeLongestSide(sam_model.image_encoder.img_size)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[torch.Tensor, tuple[int, int]]] = OrderedDict()
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def num_images(self) -> int:
        """Images whose embeddings are set (0 after `reset_image`)."""
        return 0 if self.features is None else int(self.features.shape[0])

    def reset_image(self) -> None:
        """Forget the current image(s) and their embeddings."""
        self.is_image_set = False
        self.features: torch.Tensor | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        self.original_sizes: list[tuple[int, int]] = []
        self.input_sizes: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ images
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Compute the embedding of one image.

        Args:
            image: (H, W, 3) uint8 array.
            image_format: "RGB" or "BGR" (channels are flipped to the model's RGB when needed).
        """
        self.set_image_batch([image], image_format=image_format)

    def set_image_batch(self, images: Sequence[np.ndarray], image_format: str = "RGB") -> None:
        """Compute the embeddings of several images in one encoder pass.

        Args:
            images: (H_i, W_i, 3) uint8 arrays; sizes may differ.
            image_format: "RGB" or "BGR", for every image.
        """
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if len(images) == 0:
            raise ValueError("set_image_batch needs at least one image")
        rgb = []
        for i, image in enumerate(images):
            check_image(image, f"images[{i}]" if len(images) > 1 else "image")
            if image_format != self.model.image_format:
                image = image[..., ::-1]
            rgb.append(np.ascontiguousarray(image))
        keys = [_image_key(im, self.device) for im in rgb] if self.cache_size > 0 else []
        if keys and all(k in self._cache for k in keys):
            for k in keys:
                self._cache.move_to_end(k)
            self.reset_image()
            self.features = torch.cat([self._cache[k][0] for k in keys])
            self.original_sizes = [(int(im.shape[0]), int(im.shape[1])) for im in rgb]
            self.input_sizes = [self._cache[k][1] for k in keys]
            self.original_size, self.input_size = self.original_sizes[0], self.input_sizes[0]
            self.is_image_set = True
            return
        tensors, originals, inputs = [], [], []
        for image in rgb:
            resized = self.transform.apply_image(image)
            tensor = torch.as_tensor(resized, device=self.device)
            tensor = tensor.permute(2, 0, 1).contiguous()  # (h, w, 3) -> (3, h, w)
            tensors.append(self.model.preprocess(tensor.float()))
            originals.append((int(image.shape[0]), int(image.shape[1])))
            inputs.append((int(resized.shape[0]), int(resized.shape[1])))
        self._encode(torch.stack(tensors), originals, inputs)
        assert self.features is not None
        for i, k in enumerate(keys):
            self._cache[k] = (self.features[i : i + 1], inputs[i])
            self._cache.move_to_end(k)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def set_torch_image(
        self, transformed_image: torch.Tensor, original_image_size: Sequence[int]
    ) -> None:
        """Compute the embedding of an image already resized by `ResizeLongestSide`.

        Args:
            transformed_image: (1, 3, H, W) 0-255 RGB tensor with long side = encoder size.
            original_image_size: (H0, W0) before resizing.
        """
        size = self.model.image_encoder.img_size
        shape = tuple(transformed_image.shape)
        if len(shape) != 4 or shape[0] != 1 or shape[1] != 3 or max(shape[2:]) != size:
            raise ValueError(
                f"set_torch_image expects a (1, 3, H, W) tensor with long side {size}, got {shape}"
            )
        x = self.model.preprocess(transformed_image.to(self.device).float())
        original = (int(original_image_size[0]), int(original_image_size[1]))
        self._encode(x, [original], [(int(shape[2]), int(shape[3]))])

    @torch.no_grad()
    def _encode(
        self,
        inputs: torch.Tensor,
        original_sizes: list[tuple[int, int]],
        input_sizes: list[tuple[int, int]],
    ) -> None:
        self.reset_image()
        self.features = self.model.image_encoder(inputs)
        self.original_sizes = original_sizes
        self.input_sizes = input_sizes
        self.original_size = original_sizes[0]
        self.input_size = input_sizes[0]
        self.is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """The embedding(s) of the set image(s): (num_images, 256, 64, 64) float32."""
        if not self.is_image_set or self.features is None:
            raise RuntimeError("An image must be set with .set_image(...) to get an embedding.")
        return self.features

    def _image(self, image_index: int | None) -> int:
        return check_image_index(self.is_image_set, self.num_images, image_index)

    # ----------------------------------------------------------------- prompts
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        image_index: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt, in the original image frame.

        Args:
            point_coords: (N, 2) XY pixel coordinates in the original image.
            point_labels: (N,) 1 = foreground, 0 = background.
            box: (4,) XYXY box in the original image.
            mask_input: (1, 256, 256) low-res logits from a previous prediction.
            multimask_output: 3 masks for ambiguous prompts instead of 1.
            return_logits: return logits instead of boolean masks.
            image_index: which image of `set_image_batch` (None when one image is set).

        Returns:
            masks (C, H, W) bool (float32 logits if `return_logits`), iou predictions (C,)
            float32, low-res logits (C, 256, 256) float32; C = 3 or 1.
        """
        index = self._image(image_index)
        original = self.original_sizes[index]
        pts = lbl = box_np = mask_np = None
        if point_coords is not None or point_labels is not None:
            pts, lbl = check_points(point_coords, point_labels, original)
            pts, lbl = pts[None], lbl[None]  # one prompt: (1, N, 2), (1, N)
        if box is not None:
            box_np = check_single_box(box, original)  # (1, 4)
        if mask_input is not None:
            mask_size = self.model.prompt_encoder.mask_input_size
            mask_np = check_mask_input(mask_input, mask_size)[None]  # (1, 1, h, w)
        if pts is None and box_np is None and mask_np is None:
            # no prompt at all: SAM still predicts (from the "no mask" embedding alone)
            masks, iou, low_res = self.predict_torch(
                None, None, None, None, multimask_output, return_logits, image_index=index
            )
            return masks[0].cpu().numpy(), iou[0].cpu().numpy(), low_res[0].cpu().numpy()
        masks_np, iou_np, low_res_np = self.predict_many(
            pts, lbl, box_np, mask_np, multimask_output, return_logits, image_index=index
        )
        return masks_np[0], iou_np[0], low_res_np[0]

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
        """Masks for K prompts on one image in one call (e.g. every box of a detector).

        Args:
            point_coords: (K, N, 2) XY in the original image; pad with label -1.
            point_labels: (K, N) in {-1, 0, 1}.
            boxes: (K, 4) XYXY in the original image.
            mask_input: (K, 1, 256, 256) low-res logits.
            multimask_output, return_logits, image_index: as `predict`.

        Returns:
            masks (K, C, H, W), iou predictions (K, C), low-res logits (K, C, 256, 256).
        """
        index = self._image(image_index)
        original = self.original_sizes[index]
        pts, lbl, bxs, msk = check_many_prompts(
            point_coords,
            point_labels,
            boxes,
            mask_input,
            original,
            self.model.prompt_encoder.mask_input_size,
        )
        dev = self.device
        coords = labels = boxes_t = mask_t = None
        if pts is not None:
            pts = self.transform.apply_coords(pts, original)
            coords = torch.as_tensor(pts, dtype=torch.float, device=dev)
            labels = torch.as_tensor(lbl, dtype=torch.int, device=dev)
        if bxs is not None:
            boxes_t = torch.as_tensor(self.transform.apply_boxes(bxs, original), device=dev)
            boxes_t = boxes_t.float()
        if msk is not None:
            mask_t = torch.as_tensor(msk, dtype=torch.float, device=dev)
        masks, iou, low_res = self.predict_torch(
            coords, labels, boxes_t, mask_t, multimask_output, return_logits, image_index=index
        )
        return masks.cpu().numpy(), iou.cpu().numpy(), low_res.cpu().numpy()

    def predict_batch(
        self,
        point_coords: Sequence[np.ndarray | None] | None = None,
        point_labels: Sequence[np.ndarray | None] | None = None,
        boxes: Sequence[np.ndarray | None] | None = None,
        mask_input: Sequence[np.ndarray | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`predict_many` for every image of `set_image_batch`; each argument has one entry per
        image (or is None). Returns one (masks, iou predictions, low-res logits) per image."""
        n = self.num_images
        if not self.is_image_set:
            raise RuntimeError("Images must be set with .set_image_batch(...) before prediction.")
        args = {
            "point_coords": point_coords,
            "point_labels": point_labels,
            "boxes": boxes,
            "mask_input": mask_input,
        }
        for name, value in args.items():
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")
        results = []
        for i in range(n):
            per_image = {k: (v[i] if v is not None else None) for k, v in args.items()}
            results.append(
                self.predict_many(
                    **per_image,
                    multimask_output=multimask_output,
                    return_logits=return_logits,
                    image_index=i,
                )
            )
        return results

    def _upsample(self, low_res: torch.Tensor, index: int, return_logits: bool) -> torch.Tensor:
        """(B, C, 256, 256) logits -> (B, C, H, W) masks (or logits) of image `index`.

        Runs `Sam.postprocess_masks` a few masks at a time: its 1024x1024 intermediate is 4 MiB
        per mask, and boolean outputs are thresholded before the next chunk is upsampled.
        """
        b, c = low_res.shape[:2]
        h, w = self.original_sizes[index]
        flat = low_res.reshape(b * c, 1, *low_res.shape[2:])  # (B, C, h, w) -> (B*C, 1, h, w)
        dtype = low_res.dtype if return_logits else torch.bool
        out = torch.empty((b * c, 1, h, w), dtype=dtype, device=low_res.device)
        for s in range(0, b * c, _UPSAMPLE_CHUNK):
            part = self.model.postprocess_masks(
                flat[s : s + _UPSAMPLE_CHUNK], self.input_sizes[index], (h, w)
            )
            out[s : s + _UPSAMPLE_CHUNK] = (
                part if return_logits else part > self.model.mask_threshold
            )
        return out.reshape(b, c, h, w)  # (B*C, 1, H, W) -> (B, C, H, W)

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        image_index: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks for a batch of B prompts already in the resized (encoder input) frame.

        Args:
            point_coords: (B, N, 2) XY in the frame of `ResizeLongestSide`.
            point_labels: (B, N) in {-1 (padding), 0, 1}.
            boxes: (B, 4) XYXY in the resized frame.
            mask_input: (B, 1, 256, 256) low-res logits.
            multimask_output, return_logits, image_index: as `predict`.

        Returns:
            masks (B, C, H, W) bool (or float logits), iou predictions (B, C) and low-res logits
            (B, C, 256, 256), on the model's device.
        """
        index = self._image(image_index)
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        batch = check_torch_prompts(point_coords, point_labels, boxes, mask_input)
        assert self.features is not None
        embedding = self.features[index : index + 1]
        dense_pe = self.model.prompt_encoder.get_dense_pe()
        outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for s in range(0, max(batch, 1), DECODE_CHUNK):
            part = slice(s, s + DECODE_CHUNK)
            points = None
            if point_coords is not None and point_labels is not None:
                points = (point_coords[part], point_labels[part])
            sparse, dense = self.model.prompt_encoder(
                points=points,
                boxes=None if boxes is None else boxes[part],
                masks=None if mask_input is None else mask_input[part],
            )
            low_res, iou = self.model.mask_decoder(
                image_embeddings=embedding,
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            masks = self._upsample(low_res, index, return_logits)
            outputs.append((masks, iou, low_res))
        if len(outputs) == 1:
            return outputs[0]
        masks, iou, low_res = (torch.cat(t) for t in zip(*outputs))
        return masks, iou, low_res


def check_image_index(is_image_set: bool, num_images: int, image_index: int | None) -> int:
    """The set image a prediction is for: `image_index`, or 0 when one image is set."""
    if not is_image_set:
        raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")
    if image_index is None:
        if num_images > 1:
            raise ValueError(f"{num_images} images are set; pass image_index= or use predict_batch")
        return 0
    if not 0 <= image_index < num_images:
        raise IndexError(f"image_index {image_index} out of range for {num_images} images")
    return image_index


def _image_key(image: np.ndarray, device: torch.device) -> str:
    """Cache key of an RGB image: shape, a digest of its pixels, and the model's device."""
    digest = hashlib.blake2b(image.tobytes(), digest_size=20).hexdigest()
    return f"{image.shape}:{digest}:{device}"

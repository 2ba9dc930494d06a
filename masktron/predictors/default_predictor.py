"""`DefaultPredictor`: one image in, Detectron2-style results out, as Detectron2's class."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from masktron.config import CfgNode
from masktron.config.rules import validate as validate_config
from masktron.data import transforms as T
from masktron.data.catalog import MetadataCatalog
from masktron.models.build import build_model
from masktron.models.precision import precision_dtype, prepare_for_inference
from masktron.utils.env import set_float32_precision


class DefaultPredictor:
    """Build the model of `cfg`, load `cfg.MODEL.WEIGHTS`, and run it on single images.

    Images come in BGR order (what `cv2.imread` gives), as in Detectron2; they are flipped
    to RGB when the model's `INPUT.FORMAT` is RGB. Each is resized as in Detectron2's testing
    (`ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)`, PIL bilinear on uint8) and the
    outputs come back in original-image pixels: `{"instances": Instances}` for detectors,
    plus `"sem_seg"` / `"panoptic_seg"` for Panoptic FPN. A non-empty `FLOAT32_PRECISION`
    is applied process-wide (`"highest"` turns TF32 off on GPUs, for float32-exact outputs).
    `MODEL.PRECISION = "bf16"` (opt-in) runs the backbone and heads in bfloat16 with the
    post-processing in float32 (`masktron.models.precision`, docs/speed.md).

    Example:
        predictor = DefaultPredictor(cfg)
        outputs = predictor(cv2.imread("input.jpg"))  # (H, W, 3) uint8 BGR
    """

    def __init__(self, cfg: CfgNode):
        from masktron.checkpoint import DetectionCheckpointer

        self.cfg = cfg.clone()
        validate_config(self.cfg)
        set_float32_precision(self.cfg.FLOAT32_PRECISION)
        precision_dtype(self.cfg.MODEL.PRECISION, self.cfg.MODEL.DEVICE)  # fail before building
        self.model = build_model(self.cfg)
        self.model.eval()
        if self.cfg.DATASETS.TEST:
            self.metadata = MetadataCatalog.get(self.cfg.DATASETS.TEST[0])
        if self.cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(self.model).load(self.cfg.MODEL.WEIGHTS)
        # After loading, so the low-precision weights are rounded once from the file's.
        prepare_for_inference(
            self.model, self.cfg.MODEL.PRECISION, channels_last=self.cfg.MODEL.CHANNELS_LAST
        )
        size = self.cfg.INPUT.MIN_SIZE_TEST
        self.aug = T.ResizeShortestEdge([size, size], self.cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = self.cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")

    def _to_input(self, original_image: np.ndarray) -> dict[str, Any]:
        image = np.asarray(original_image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                "DefaultPredictor expects an (H, W, 3) uint8 BGR image, "
                f"got shape {image.shape} dtype {image.dtype}"
            )
        if self.input_format == "RGB":
            image = image[:, :, ::-1]
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"DefaultPredictor got an empty image (shape {image.shape})")
        resized = self.aug.get_transform(image).apply_image(image)
        # (H, W, 3) -> (3, H, W)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        return {"image": tensor, "height": height, "width": width}

    def __call__(self, original_image: np.ndarray) -> dict[str, Any]:
        """Args: original_image (H, W, 3) uint8, BGR. Returns the model's outputs for it."""
        with torch.inference_mode():
            return self.model([self._to_input(original_image)])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        """Several BGR images at once; the same outputs as one `__call__` per image.

        Images whose resized size pads to the same batch shape run in one forward pass (one
        batched backbone call); each other shape runs as its own batch. Padding a small image
        up to a larger one's shape would change its outputs: the zeros below and right of it
        reach its border through the convolutions, and GroupNorm statistics include them.

        Args:
            images: (H, W, 3) uint8 BGR images, of any sizes.

        Returns:
            One output dict per image, in the order given.
        """
        inputs = [self._to_input(image) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(inputs):
            groups.setdefault(self._padded_size(item["image"]), []).append(index)
        outputs: list[dict[str, Any]] = [{} for _ in inputs]
        with torch.inference_mode():
            for indices in groups.values():
                for index, output in zip(indices, self.model([inputs[i] for i in indices])):
                    outputs[index] = output
        return outputs

    def _padded_size(self, image: torch.Tensor) -> tuple[int, int]:
        """The (H, W) that `ImageList.from_tensors` pads `image` (3, H, W) to on its own
        (exact sizes for a model without a backbone's `size_divisibility`)."""
        stride = max(1, int(getattr(getattr(self.model, "backbone", None), "size_divisibility", 1)))
        height, width = image.shape[-2:]
        return -(-height // stride) * stride, -(-width // stride) * stride

"""Detector -> SAM in one call: the boxes of an `Instances` become SAM (or SAM 2) box prompts.

Any masktron detector (Mask R-CNN, RetinaNet, Panoptic FPN's instances, or hand-made
`Instances`) gives `pred_boxes` in original-image pixels; SAM or SAM 2 turns each box into a mask
at the image's full resolution.

Example:
    detector = DefaultPredictor(cfg)
    bgr = cv2.imread("street.jpg")
    outputs = detector(bgr)
    refined = refine_with_sam(SamPredictor(sam), outputs, bgr, image_format="BGR")
    refined.pred_masks  # (N, H, W) bool, from SAM
    refined = refine_with_sam(SAM2ImagePredictor(sam2_model), outputs, bgr, image_format="BGR")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from masktron.models.sam.sam import Sam
from masktron.predictors.sam2_image import SAM2ImagePredictor
from masktron.predictors.sam_predictor import DECODE_CHUNK, SamPredictor
from masktron.structures import Instances


def refine_with_sam(
    sam: SamPredictor | Sam | SAM2ImagePredictor | Any,
    instances: Instances | Mapping[str, Any],
    image: np.ndarray | None = None,
    *,
    image_format: str = "RGB",
    multimask_output: bool = False,
) -> Instances:
    """Replace (or add) the `pred_masks` of detections by SAM's masks for their boxes.

    Args:
        sam: a `SamPredictor` or `SAM2ImagePredictor` (reused: its current image or embedding
            cache), or a `Sam` or SAM 2 (`SAM2Base`) model.
        instances: detections with `pred_boxes` (`Boxes`, XYXY original-image pixels), or a
            detector's output dict holding them under "instances".
        image: the (H, W, 3) uint8 image the detections belong to. None reuses the image already
            set on the predictor.
        image_format: "RGB" or "BGR" (masktron's `DefaultPredictor` takes BGR).
        multimask_output: ask SAM for 3 masks per box and keep the one with the highest
            predicted IoU (SAM's authors recommend single masks for boxes, the default).

    Returns:
        A new `Instances` with every field of the input plus `pred_masks` (N, H, W) bool and
        `sam_scores` (N,) float32 (SAM's predicted IoU of each mask), on the boxes' device.
    """
    if isinstance(instances, Mapping):
        if "instances" not in instances:
            raise ValueError(f"expected a detector output with 'instances', got {list(instances)}")
        instances = instances["instances"]
    if not isinstance(instances, Instances):
        raise ValueError(f"expected masktron Instances, got {type(instances).__name__}")
    if not instances.has("pred_boxes"):
        fields = list(instances.get_fields())
        raise ValueError(f"instances have no 'pred_boxes' to prompt SAM with; fields: {fields}")
    predictor = _predictor(sam)
    if image is not None:
        predictor.set_image(image, image_format=image_format)
    elif not predictor.is_image_set:
        raise ValueError(f"pass the image, or set it on the {type(predictor).__name__} first")
    elif predictor.num_images != 1:
        raise ValueError(f"the predictor holds {predictor.num_images} images; pass the image")
    height, width = predictor.original_sizes[0]
    if tuple(instances.image_size) != (height, width):
        raise ValueError(
            f"instances are for an image of (height, width) {tuple(instances.image_size)}, "
            f"but the SAM image is {(height, width)}"
        )

    boxes_t = instances.pred_boxes.tensor
    boxes = boxes_t.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
    # Detectors clip their boxes; clip again so float round-off at the border is no error.
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    scores = np.zeros(len(boxes), dtype=np.float32)
    for start in range(0, len(boxes), DECODE_CHUNK):
        part = slice(start, start + DECODE_CHUNK)
        chunk_masks, chunk_ious, _ = predictor.predict_many(
            boxes=boxes[part], multimask_output=multimask_output, image_index=0
        )
        best = chunk_ious.argmax(axis=1)  # (k,): the best of the C masks of each box
        rows = np.arange(len(best))
        masks[part] = chunk_masks[rows, best]
        scores[part] = chunk_ious[rows, best]

    out = Instances(instances.image_size, **instances.get_fields())
    out.pred_masks = torch.from_numpy(masks).to(boxes_t.device)
    out.sam_scores = torch.from_numpy(scores).to(boxes_t.device)
    return out


def _predictor(sam: Any) -> SamPredictor | SAM2ImagePredictor:
    if isinstance(sam, (SamPredictor, SAM2ImagePredictor)):
        return sam
    if isinstance(sam, Sam):
        return SamPredictor(sam)
    if hasattr(sam, "sam_mask_decoder") and hasattr(sam, "forward_image"):  # a SAM 2 model
        return SAM2ImagePredictor(sam)
    raise TypeError(
        "refine_with_sam needs a SamPredictor, SAM2ImagePredictor, Sam or SAM 2 model, "
        f"got {type(sam).__name__}"
    )

"""The models behind `masktron serve`: SAM from a checkpoint, and an optional detector.

Meta's three SAM checkpoints are recognised by their encoder width. Any other SAM-shaped state
dict (a fine-tuned or a smaller ViT) is built from its tensor shapes: the width from the patch
embedding, the depth from the block count, the head width from the relative-position tables and
the global-attention blocks from their table length (windowed blocks have 2*14-1 rows).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from masktron.models.sam import (
    Sam,
    SamCheckpointError,
    build_sam_model,
    infer_sam_variant,
    load_sam_state_dict,
    read_state_dict,
    sam_model_registry,
)

_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")
_PATCH = "image_encoder.patch_embed.proj.weight"


def sam_architecture(state_dict: Mapping[str, torch.Tensor], path: str) -> dict[str, Any]:
    """Keyword arguments of `build_sam_model` read from a SAM state dict's tensor shapes.

    Raises:
        SamCheckpointError: the file is not shaped like a SAM (names `path` and the tensor).
    """
    patch = state_dict.get(_PATCH)
    if patch is None or patch.ndim != 4:
        raise SamCheckpointError(f"{path}: no 4-d tensor {_PATCH!r}: not a SAM checkpoint")
    width = int(patch.shape[0])
    depth = 1 + max((int(m.group(1)) for k in state_dict if (m := _BLOCK.match(k))), default=-1)
    if depth == 0:
        raise SamCheckpointError(f"{path}: no image_encoder.blocks.* tensors: not a SAM checkpoint")
    heads, global_blocks = 0, []
    for i in range(depth):
        key = f"image_encoder.blocks.{i}.attn.rel_pos_h"
        table = state_dict.get(key)
        if table is None or table.ndim != 2:
            raise SamCheckpointError(f"{path}: missing the 2-d tensor {key!r}")
        rows, head_dim = (int(s) for s in table.shape)
        if head_dim == 0 or width % head_dim:
            raise SamCheckpointError(f"{path}: {key!r} of shape {tuple(table.shape)} fits no head")
        heads = width // head_dim
        if rows != 2 * 14 - 1:  # SAM's windows are 14 tokens wide
            global_blocks.append(i)
    return {
        "encoder_embed_dim": width,
        "encoder_depth": depth,
        "encoder_num_heads": heads,
        "encoder_global_attn_indexes": tuple(global_blocks),
    }


def load_sam(checkpoint: str, model_name: str | None = None, device: str | None = None) -> Sam:
    """Build SAM for `checkpoint` (a file, a URL, or a model name such as "vit_b" for Meta's
    file through the download cache): a Meta variant by name or by width, else by tensor
    shapes; load its weights strictly (safe loader, no pickled code), move it to `device`."""
    from masktron.model_zoo.sam_checkpoints import resolve_sam_checkpoint

    path, known = resolve_sam_checkpoint(checkpoint)  # "vit_b": Meta's file, downloaded once
    state_dict = read_state_dict(path)
    name = model_name or known or infer_sam_variant(state_dict)
    if name is not None:
        model = sam_model_registry[name]()
    else:
        model = build_sam_model(**sam_architecture(state_dict, checkpoint))
    load_sam_state_dict(model, state_dict, path)
    model.eval()
    return model.to(default_device(device))


class Detector:
    """A masktron detector (`DefaultPredictor`) whose instances pre-fill the page's objects.

    Args:
        config: a YAML file or a model-zoo name.
        weights: checkpoint path or URL (default: the zoo's weights, else MODEL.WEIGHTS).
        confidence: minimum score of a detection.
        device: cpu, cuda, ... (default MODEL.DEVICE).
        opts: KEY VALUE config overrides.
    """

    def __init__(
        self,
        config: str,
        *,
        weights: str | None = None,
        confidence: float = 0.5,
        device: str | None = None,
        opts: list[str] | None = None,
    ) -> None:
        from masktron.cli.predict import setup_cfg
        from masktron.data.run_datasets import config_metadata
        from masktron.engine import DefaultPredictor

        args = argparse.Namespace(
            config=config, weights=weights, conf=confidence, device=device, opts=opts or []
        )
        cfg = setup_cfg(args)
        self.predictor = DefaultPredictor(cfg)
        metadata = config_metadata(cfg)  # a training run's config.yaml names its classes
        classes = metadata.get("thing_classes", None) if metadata is not None else None
        self.class_names: list[str] | None = list(classes) if classes else None

    def class_name(self, index: int) -> str:
        """Name of the detector's class `index` (`class_<index>` when the config has none)."""
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return f"class_{index}"

    def __call__(self, image_rgb: Any) -> list[dict[str, Any]]:
        """Detections of an (H, W, 3) uint8 RGB image: dicts with `mask` ((H, W) bool),
        `box` (XYXY pixels), `score` and `class_name`, best first. Instances without masks
        (box-only detectors) get their filled box as the mask."""
        instances = self.predictor(image_rgb[:, :, ::-1])["instances"].to("cpu")
        h, w = image_rgb.shape[:2]
        boxes = instances.pred_boxes.tensor.numpy()
        masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
        found = []
        for k in range(len(instances)):
            if masks is not None:
                mask = masks[k].astype(bool)
            else:
                mask = np.zeros((h, w), dtype=bool)
                x0, y0, x1, y1 = (int(round(float(v))) for v in boxes[k])
                mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
            found.append(
                {
                    "mask": mask,
                    "box": [float(v) for v in boxes[k]],
                    "score": float(instances.scores[k]),
                    "class_name": self.class_name(int(instances.pred_classes[k])),
                }
            )
        return found


def default_device(device: str | None) -> str:
    """`device`, or cuda when available, else cpu."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_file(path: str, flag: str) -> None:
    """Fail early, naming the flag, when a local file is missing (URLs are left alone)."""
    if "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(f"{flag} {path}: no such file")

"""Helpers for tests of models and structures (Detectron2's `detectron2.utils.testing`).

Used by ported Detectron2 test suites and by projects' own tests: random boxes, a zoo model
without weights on the CPU, Instances comparison, a sample COCO photo.
"""

from __future__ import annotations

import os
import unittest
from typing import Any

import numpy as np
import torch

from masktron.structures import Boxes, Instances

__all__ = [
    "assert_instances_allclose",
    "get_model_no_weights",
    "get_sample_coco_image",
    "random_boxes",
    "reload_lazy_config",
    "reload_script_model",
    "skipIfOnCPUCI",
]


def get_model_no_weights(config_path: str) -> torch.nn.Module:
    """A model-zoo model with random weights, on the CPU when there is no GPU."""
    from masktron import model_zoo
    from masktron.models.build import build_model

    cfg = model_zoo.get_config(config_path)
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return build_model(cfg)


def random_boxes(num_boxes: int, max_coord: int = 100, device: str = "cpu") -> torch.Tensor:
    """(num_boxes, 4) valid XYXY boxes: corners at least 1 pixel in, sides at least 1 pixel."""
    boxes = torch.rand(num_boxes, 4, device=device) * (max_coord * 0.5)
    boxes.clamp_(min=1.0)  # no zero-sized boxes
    boxes[:, 2:] += boxes[:, :2]  # (x0, y0, w, h) -> (x0, y0, x1, y1)
    return boxes


def _fields_close(name: str, a: Any, b: Any, rtol: float, msg: str) -> None:
    if isinstance(a, Boxes):
        a, b = a.tensor, b.tensor
    if isinstance(a, torch.Tensor):
        if a.dtype.is_floating_point:
            atol = 0.0 if name.endswith("masks") else 1e-5 * max(a.abs().max().item(), 1.0)
            ok = torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)
        else:
            ok = torch.equal(a, b)
        if not ok:
            raise AssertionError(f"{msg}Instances field {name!r} differs")
    elif a != b:
        raise AssertionError(f"{msg}Instances field {name!r} differs: {a} != {b}")


def assert_instances_allclose(
    input: Instances, other: Instances, *, rtol: float = 1e-5, msg: str = "", size_as_tensor=False
) -> None:
    """Raise AssertionError unless two Instances have the same size, fields and close values."""
    msg = f"{msg}: " if msg else ""
    if not isinstance(input, Instances) or not isinstance(other, Instances):
        raise AssertionError(f"{msg}expected two Instances")
    if tuple(input.image_size) != tuple(other.image_size):
        raise AssertionError(f"{msg}image sizes differ: {input.image_size} {other.image_size}")
    names = sorted(input.get_fields())
    if names != sorted(other.get_fields()):
        raise AssertionError(f"{msg}fields differ: {names} vs {sorted(other.get_fields())}")
    for name in names:
        _fields_close(name, input.get(name), other.get(name), rtol, msg)


def get_sample_coco_image(tensor: bool = True) -> Any:
    """A COCO val2017 photo (from `$MASKTRON_SHARED/data/coco_sample`): a (3, H, W) uint8 BGR
    tensor, or an (H, W, 3) BGR array when `tensor` is False."""
    from masktron.data.detection_utils import read_image

    shared = os.environ.get("MASKTRON_SHARED", "")
    folder = os.path.join(shared, "data", "coco_sample", "images", "val2017")
    if not shared or not os.path.isdir(folder):
        raise FileNotFoundError(
            "get_sample_coco_image needs the shared COCO sample: set MASKTRON_SHARED to the "
            "folder holding data/coco_sample"
        )
    image = read_image(os.path.join(folder, sorted(os.listdir(folder))[0]), format="BGR")
    if tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return image


def skipIfOnCPUCI(func: Any) -> Any:  # noqa: N802 (Detectron2's name)
    """Skip a test on CPU-only CI machines (`CI` set and no GPU)."""
    on_cpu_ci = os.environ.get("CI") is not None and not torch.cuda.is_available()
    return unittest.skipIf(on_cpu_ci, "skipped on CPU-only CI")(func)


def reload_lazy_config(cfg: Any) -> Any:
    """`cfg` saved to YAML and loaded back (checks that a lazy config survives serialisation)."""
    import tempfile

    from masktron.config import LazyConfig

    with tempfile.TemporaryDirectory(prefix="masktron") as folder:
        path = os.path.join(folder, "config.yaml")
        LazyConfig.save(cfg, path)
        return LazyConfig.load(path)


def reload_script_model(module: Any) -> Any:
    """A TorchScript module saved to memory and loaded back."""
    import io

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)

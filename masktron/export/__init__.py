"""Exporting models to other runtimes (`detectron2.export`'s place): detectors and SAM's
prompt part to ONNX, and the onnxruntime side of an exported detector.

Names are imported on first use, so that `masktron.export.onnx_runtime` (numpy and
onnxruntime only) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ONNX_INPUT_NAMES": "masktron.export.sam_onnx",
    "SamOnnxModel": "masktron.export.sam_onnx",
    "export_sam_onnx": "masktron.export.sam_onnx",
    "DetectorOnnxModel": "masktron.export.detector_onnx",
    "ExportError": "masktron.export.detector_onnx",
    "export_detector": "masktron.export.detector_onnx",
    "OnnxDetector": "masktron.export.onnx_runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'masktron.export' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

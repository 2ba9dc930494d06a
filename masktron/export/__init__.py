"""Exporting models to other runtimes (`detectron2.export`'s place): SAM's prompt part to ONNX."""

from masktron.export.sam_onnx import ONNX_INPUT_NAMES, SamOnnxModel, export_sam_onnx

__all__ = ["ONNX_INPUT_NAMES", "SamOnnxModel", "export_sam_onnx"]

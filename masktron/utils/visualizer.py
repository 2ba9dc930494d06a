"""Detectron2's import path `detectron2.utils.visualizer`; the code is in masktron.visualization."""

from masktron.visualization.visualizer import ColorMode, VisImage, Visualizer  # noqa: F401

"""Detectron2-compatible import paths (`masktron.utils.visualizer`); the code lives elsewhere."""

"""Shared helpers (`file_io`) and Detectron2 import paths (`masktron.utils.visualizer`)."""

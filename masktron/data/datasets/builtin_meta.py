"""Detectron2's import path for the built-in metadata (`masktron.data.builtin_meta`)."""

from masktron.data.builtin_meta import COCO_CATEGORIES, get_builtin_metadata  # noqa: F401

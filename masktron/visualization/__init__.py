"""Drawing detections and segmentations on images (Detectron2's Visualizer) with numpy + Pillow."""

from masktron.visualization.colormap import colormap, id_color, random_color, random_colors
from masktron.visualization.vis_image import VisImage
from masktron.visualization.visualizer import ColorMode, Visualizer, create_text_labels

__all__ = [
    "ColorMode",
    "VisImage",
    "Visualizer",
    "colormap",
    "create_text_labels",
    "id_color",
    "random_color",
    "random_colors",
]

"""masktron: instance, panoptic and promptable segmentation in pure PyTorch."""

__version__ = "0.1.0"

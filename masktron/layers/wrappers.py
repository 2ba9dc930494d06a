"""Detectron2's `detectron2.layers.wrappers` import path."""

from masktron.layers.conv import Conv2d  # noqa: F401
from masktron.layers.tensor_ops import (  # noqa: F401
    BatchNorm2d,
    ConvTranspose2d,
    Linear,
    cat,
    cross_entropy,
    empty_input_loss_func_wrapper,
    interpolate,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)

"""Layers: thin typed wrappers over torchvision ops and the small modules the models share."""

from masktron.layers.blocks import ASPP, DepthwiseSeparableConv2d
from masktron.layers.conv import Conv2d, c2_msra_fill, c2_xavier_fill, conv3x3_norm_relu
from masktron.layers.frozen_bn import FrozenBatchNorm2d, LayerNorm2d, get_norm
from masktron.layers.losses import ciou_loss, diou_loss
from masktron.layers.mask_ops import paste_masks_in_image
from masktron.layers.nms import batched_nms, nms, topk_size
from masktron.layers.roi_align import ROIAlign, roi_align, roi_align_reference
from masktron.layers.shape_spec import ShapeSpec
from masktron.layers.tensor_ops import (
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

__all__ = [
    "ASPP",
    "DepthwiseSeparableConv2d",
    "BatchNorm2d",
    "ConvTranspose2d",
    "Linear",
    "cat",
    "ciou_loss",
    "cross_entropy",
    "diou_loss",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
    "Conv2d",
    "FrozenBatchNorm2d",
    "LayerNorm2d",
    "ROIAlign",
    "ShapeSpec",
    "batched_nms",
    "c2_msra_fill",
    "c2_xavier_fill",
    "conv3x3_norm_relu",
    "get_norm",
    "nms",
    "paste_masks_in_image",
    "roi_align",
    "roi_align_reference",
    "topk_size",
]

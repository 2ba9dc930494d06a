"""The Mask R-CNN mask head (He et al., 2017): a small FCN on each RoI's pooled features
predicting an M x M mask per class, with its inference and loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from masktron.config.configurable import configurable
from masktron.layers import ShapeSpec, c2_msra_fill, conv3x3_norm_relu
from masktron.models.roi_heads.box_head import split_per_image
from masktron.structures import Instances


def mask_rcnn_inference(mask_logits: torch.Tensor, instances: list[Instances]) -> None:
    """Set `pred_masks` (R_i, 1, M, M) probabilities on each image's instances, in place.

    The mask of each detection's predicted class is taken (channel 0 when class-agnostic).
    """
    if mask_logits.size(1) == 1:
        probs = mask_logits.sigmoid()
    else:
        classes = torch.cat([inst.pred_classes for inst in instances])
        index = torch.arange(mask_logits.shape[0], device=classes.device)
        probs = mask_logits[index, classes][:, None].sigmoid()  # (R, K, M, M) -> (R, 1, M, M)
    for inst, p in zip(instances, split_per_image(probs, instances)):
        inst.pred_masks = p


def mask_rcnn_loss(mask_logits: torch.Tensor, instances: list[Instances]) -> torch.Tensor:
    """Mean per-pixel BCE between each foreground proposal's mask logits (of its ground-truth
    class) and its ground-truth mask cropped to the proposal box and resized to M x M."""
    side = mask_logits.size(2)
    gt_classes, gt_masks = [], []
    for inst in instances:
        if len(inst) == 0:
            continue
        gt_classes.append(inst.gt_classes)
        gt_masks.append(inst.gt_masks.crop_and_resize(inst.proposal_boxes.tensor, side))
    if not gt_masks:
        return mask_logits.sum() * 0
    target = torch.cat(gt_masks).to(device=mask_logits.device, dtype=torch.float32)
    if mask_logits.size(1) == 1:
        logits = mask_logits[:, 0]
    else:
        index = torch.arange(mask_logits.size(0), device=mask_logits.device)
        logits = mask_logits[index, torch.cat(gt_classes)]  # (R, K, M, M) -> (R, M, M)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="mean")


class BaseMaskRCNNHead(nn.Module):
    """A mask head: subclasses define `layers(x)` -> (R, K, M, M) logits; `forward` turns them
    into `{"loss_mask": ...}` in training and `pred_masks` at inference (Detectron2's base for
    user mask heads registered in `ROI_MASK_HEAD_REGISTRY`).

    Args:
        loss_weight: scales `loss_mask`.
        vis_period: accepted for Detectron2's signature; masktron visualises through hooks.
    """

    @configurable
    def __init__(self, *, loss_weight: float = 1.0, vis_period: int = 0):
        super().__init__()
        self.loss_weight = loss_weight
        self.vis_period = vis_period

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        return {"vis_period": cfg.VIS_PERIOD} if "VIS_PERIOD" in cfg else {}

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define layers(x)")

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """Training: `{"loss_mask": ...}` for foreground proposals. Inference: sets
        `pred_masks` on the detections and returns them."""
        logits = self.layers(x)
        if self.training:
            return {"loss_mask": mask_rcnn_loss(logits, instances) * self.loss_weight}
        mask_rcnn_inference(logits, instances)
        return instances


class MaskRCNNConvUpsampleHead(BaseMaskRCNNHead):
    """`mask_fcn1..K` (3x3, ReLU), `deconv` (2x2 stride-2 transposed conv, ReLU), `predictor`
    (1x1 conv, one channel per class): (R, C, S, S) -> (R, K, 2S, 2S) logits.

    Args:
        input_shape: channels of the pooled features.
        num_classes: foreground classes K (1 when class-agnostic).
        conv_dims: channels of each conv then of the deconv (the last entry).
        conv_norm: norm name for the convs.
        loss_weight: scales `loss_mask`.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        conv_dims: list[int],
        conv_norm: str = "",
        loss_weight: float = 1.0,
        vis_period: int = 0,
    ):
        super().__init__(loss_weight=loss_weight, vis_period=vis_period)
        if len(conv_dims) < 1:
            raise ValueError("conv_dims needs at least the deconv's channels")
        channels = input_shape.channels
        if channels is None:
            raise ValueError("MaskRCNNConvUpsampleHead needs input_shape.channels")
        self.conv_norm_relus: list[nn.Module] = []
        # Layers created first, then initialised, in Detectron2's order (same seed, same weights).
        for k, dim in enumerate(conv_dims[:-1]):
            conv = conv3x3_norm_relu(channels, dim, conv_norm, msra_init=False)
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            channels = dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dims[-1], kernel_size=2, stride=2)
        self.predictor = nn.Conv2d(conv_dims[-1], num_classes, kernel_size=1)
        for layer in [*self.conv_norm_relus, self.deconv]:
            c2_msra_fill(layer)
        nn.init.normal_(self.predictor.weight, std=0.001)
        assert self.predictor.bias is not None  # nn.Conv2d's default bias=True
        nn.init.constant_(self.predictor.bias, 0)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        """Detectron2's `MaskRCNNConvUpsampleHead(cfg, input_shape)`: arguments from the config."""
        from masktron.models.build import mask_head_kwargs

        return mask_head_kwargs(cfg, input_shape)

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.conv_norm_relus:
            x = conv(x)
        # In place: the transposed convolution's backward needs its input, not its output.
        x = F.relu_(self.deconv(x))
        return self.predictor(x)

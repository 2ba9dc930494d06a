"""The Keypoint R-CNN head (He et al., 2017, section 5): a stack of 3x3 convs on each RoI's
pooled features, a stride-2 transposed conv and a bilinear x2 upsampling to one heat map per
keypoint (56 x 56 from 14 x 14 RoIs); its loss (a softmax over each heat map's cells) and its
inference (`heatmaps_to_keypoints`)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from masktron.layers import ShapeSpec, conv3x3_norm_relu
from masktron.structures import Instances, heatmaps_to_keypoints


def keypoint_rcnn_loss(
    logits: torch.Tensor, instances: list[Instances], normalizer: float | None
) -> torch.Tensor:
    """Cross-entropy of each visible ground-truth keypoint's cell against its heat map.

    Args:
        logits: (R, K, S, S) heat-map logits for the foreground proposals of all images.
        instances: per image, those proposals with `proposal_boxes` and `gt_keypoints`.
        normalizer: divide the summed loss by this; None divides by the number of visible
            keypoints in the batch (Detectron2's NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS).

    Returns:
        A scalar; zero (still connected to `logits`) when no keypoint is visible.
    """
    side = logits.shape[2]
    targets, valid = [], []
    for inst in instances:
        if len(inst) == 0:
            continue
        t, v = inst.gt_keypoints.to_heatmap(inst.proposal_boxes.tensor, side)
        targets.append(t.view(-1))  # (R_i, K) -> (R_i*K,)
        valid.append(v.view(-1))
    if not targets:
        return logits.sum() * 0
    target = torch.cat(targets).to(logits.device)
    keep = torch.nonzero(torch.cat(valid)).squeeze(1).to(logits.device)
    if keep.numel() == 0:
        return logits.sum() * 0
    n, k, h, w = logits.shape
    flat = logits.reshape(n * k, h * w)  # (R, K, S, S) -> (R*K, S*S)
    loss = F.cross_entropy(flat[keep], target[keep], reduction="sum")
    return loss / (keep.numel() if normalizer is None else normalizer)


def keypoint_rcnn_inference(logits: torch.Tensor, instances: list[Instances]) -> None:
    """Set `pred_keypoints` (R_i, K, 3: x, y, score) and `pred_keypoint_heatmaps`
    (R_i, K, S, S logits) on each image's detections, in place, from their `pred_boxes`."""
    logits = logits.detach()
    boxes = torch.cat([inst.pred_boxes.tensor for inst in instances]).detach()
    results = heatmaps_to_keypoints(logits, boxes)  # (R, K, 4): x, y, logit, score
    counts = [len(inst) for inst in instances]
    for inst, res, maps in zip(instances, results.split(counts), logits.split(counts)):
        inst.pred_keypoints = res[:, :, [0, 1, 3]]  # (R_i, K, 4) -> (R_i, K, 3)
        inst.pred_keypoint_heatmaps = maps


def select_proposals_with_visible_keypoints(proposals: list[Instances]) -> list[Instances]:
    """Per image, the foreground proposals whose box holds at least one visible ground-truth
    keypoint (the only ones the keypoint head trains on); empty images pass unchanged."""
    out = []
    for props in proposals:
        if len(props) == 0:
            out.append(props)
            continue
        if not props.has("gt_keypoints"):
            raise ValueError(
                "training a keypoint model needs gt_keypoints for every image with objects: "
                "give each annotation 'keypoints' (and the mapper use_keypoint=True)"
            )
        kps = props.gt_keypoints.tensor  # (R, K, 3)
        box = props.proposal_boxes.tensor.unsqueeze(1)  # (R, 4) -> (R, 1, 4)
        xs, ys = kps[:, :, 0], kps[:, :, 1]
        inside = (xs >= box[:, :, 0]) & (xs <= box[:, :, 2])
        inside &= (ys >= box[:, :, 1]) & (ys <= box[:, :, 3])
        keep = (inside & (kps[:, :, 2] >= 1)).any(dim=1)
        out.append(props[torch.nonzero(keep).squeeze(1)])
    return out


class KRCNNConvDeconvUpsampleHead(nn.Module):
    """`conv_fcn1..N` (3x3, ReLU), `score_lowres` (4x4 stride-2 transposed conv to one map per
    keypoint), then bilinear x2: (R, C, S, S) -> (R, K, 4S, 4S) logits.

    Args:
        input_shape: channels of the pooled features.
        num_keypoints: K (17 for COCO persons).
        conv_dims: output channels of each conv (8 x 512 in Detectron2's configs).
        loss_weight: scales `loss_keypoint`.
        loss_normalizer: "visible" (divide by the batch's visible keypoints) or a number
            multiplied by the number of images (Detectron2 uses K * BATCH_SIZE_PER_IMAGE *
            POSITIVE_FRACTION when not normalising by visible keypoints).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_keypoints: int,
        conv_dims: list[int],
        loss_weight: float = 1.0,
        loss_normalizer: float | str = "visible",
    ):
        super().__init__()
        if isinstance(loss_normalizer, str) and loss_normalizer != "visible":
            raise ValueError(f"loss_normalizer must be 'visible' or a number: {loss_normalizer}")
        channels = input_shape.channels
        if channels is None:
            raise ValueError("KRCNNConvDeconvUpsampleHead needs input_shape.channels")
        self.loss_weight = loss_weight
        self.loss_normalizer = loss_normalizer
        self.convs: list[nn.Module] = []
        for k, dim in enumerate(conv_dims):
            conv = conv3x3_norm_relu(channels, dim, msra_init=False)  # 3x3 conv + ReLU
            self.add_module(f"conv_fcn{k + 1}", conv)
            self.convs.append(conv)
            channels = dim
        self.score_lowres = nn.ConvTranspose2d(channels, num_keypoints, 4, stride=2, padding=1)
        # All layers created, then initialised in order (Detectron2's: same seed, same weights):
        # weights He-normal (fan out), biases zero.
        for layer in [*self.convs, self.score_lowres]:
            # the convs have no norm, so every layer has a bias
            weight, bias = cast(torch.Tensor, layer.weight), cast(torch.Tensor, layer.bias)
            nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(bias, 0)
        self.up_scale = 2

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        x = self.score_lowres(x)
        return F.interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)

    def forward(
        self, x: torch.Tensor, instances: list[Instances]
    ) -> dict[str, torch.Tensor] | list[Instances]:
        """Training: `{"loss_keypoint": ...}` over the given proposals. Inference: sets
        `pred_keypoints` on the detections and returns them."""
        x = self.layers(x)
        if self.training:
            normalizer = (
                None
                if isinstance(self.loss_normalizer, str)
                else len(instances) * self.loss_normalizer
            )
            return {
                "loss_keypoint": keypoint_rcnn_loss(x, instances, normalizer) * self.loss_weight
            }
        keypoint_rcnn_inference(x, instances)
        return instances

"""Panoptic FPN (Kirillov et al., 2019): Mask R-CNN plus a semantic FPN head on the same
pyramid, and the heuristic that merges their outputs into one panoptic segmentation."""

from __future__ import annotations

from typing import Any

import torch

from masktron.config.configurable import configurable
from masktron.models.postprocessing import detector_postprocess, sem_seg_postprocess
from masktron.models.rcnn import GeneralizedRCNN
from masktron.models.sem_seg_head import SemSegFPNHead
from masktron.structures import ImageList, Instances

# The semantic head's class 0 stands for "any thing": those pixels come from the instances.
THINGS_LABEL = 0


def combine_semantic_and_instance_outputs(
    instances: Instances,
    semantic: torch.Tensor,
    *,
    overlap_thresh: float,
    stuff_area_thresh: float,
    instances_score_thresh: float,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Paint instances, best first, then stuff regions into the pixels still free.

    Follows panopticapi's `combine_semantic_and_instance_predictions.py` as Detectron2 does:
    instances below `instances_score_thresh` stop the loop; an instance whose mask is already
    more than `overlap_thresh` covered is skipped, otherwise it takes its free pixels; then each
    semantic class except `THINGS_LABEL`, restricted to the free pixels, becomes a segment if
    it has at least `stuff_area_thresh` pixels.

    Args:
        instances: detections in output pixels (`detector_postprocess`'s), with `scores`,
            `pred_classes` and (R, H, W) bool `pred_masks`.
        semantic: (H, W) int64 class per pixel (the argmax of the semantic logits).

    Returns:
        (H, W) int32 segment ids (0 = no segment) and one dict per segment: `id`, `isthing`,
        `category_id` (contiguous thing class, or the semantic class for stuff), and `score`
        plus `instance_id` for things, `area` for stuff.
    """
    panoptic = torch.zeros_like(semantic, dtype=torch.int32)
    segments: list[dict[str, Any]] = []
    masks = instances.pred_masks.to(dtype=torch.bool, device=panoptic.device)
    for idx in torch.argsort(-instances.scores):
        score = instances.scores[idx].item()
        if score < instances_score_thresh:
            break
        mask = masks[idx]
        area = mask.sum().item()
        if area == 0:
            continue
        taken = mask & (panoptic > 0)
        taken_area = taken.sum().item()
        if taken_area / area > overlap_thresh:
            continue
        if taken_area > 0:
            mask = mask & (panoptic == 0)
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append(
            {
                "id": segment_id,
                "isthing": True,
                "score": score,
                "category_id": instances.pred_classes[idx].item(),
                "instance_id": idx.item(),
            }
        )
    for label in torch.unique(semantic).cpu().tolist():
        if label == THINGS_LABEL:
            continue
        mask = (semantic == label) & (panoptic == 0)
        area = mask.sum().item()
        if area < stuff_area_thresh:
            continue
        segment_id = len(segments) + 1
        panoptic[mask] = segment_id
        segments.append({"id": segment_id, "isthing": False, "category_id": label, "area": area})
    return panoptic, segments


class PanopticFPN(GeneralizedRCNN):
    """Mask R-CNN with a semantic segmentation head, Detectron2's input and output format.

    Training inputs add `sem_seg`, an (H, W) int64 map (stuff classes 1..K, things 0,
    ignored 255). Training returns `loss_sem_seg` plus the R-CNN losses, the RoI heads' ones
    (`loss_cls`, `loss_box_reg`, `loss_mask`) scaled by `instance_loss_weight`. Inference
    returns per image `{"sem_seg": (C, H, W) logits, "instances": Instances, "panoptic_seg":
    ((H, W) int32 ids, segments_info)}` in the pixels of `height` x `width`.

    Args:
        sem_seg_head: `SemSegFPNHead` over the FPN levels.
        combine_overlap_thresh, combine_stuff_area_thresh, combine_instances_score_thresh:
            see `combine_semantic_and_instance_outputs`.
        instance_loss_weight: scales the RoI heads' losses.
        **kwargs: `GeneralizedRCNN`'s arguments.
    """

    @configurable
    def __init__(
        self,
        *,
        sem_seg_head: SemSegFPNHead,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: float = 4096,
        combine_instances_score_thresh: float = 0.5,
        instance_loss_weight: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh
        self.instance_loss_weight = instance_loss_weight

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        """Detectron2's `PanopticFPN(cfg)`: Mask R-CNN's parts, the semantic head and
        `MODEL.PANOPTIC_FPN`'s combine rules, built from the config."""
        from masktron.models.build_dense import panoptic_fpn_kwargs

        return panoptic_fpn_kwargs(cfg)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        if not self.training:
            return self.inference(batched_inputs)
        for key in ("instances", "sem_seg"):
            if any(key not in x for x in batched_inputs):
                raise KeyError(f"Panoptic FPN training inputs need {key!r} in every dict")
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        gt_sem_seg = ImageList.from_tensors(
            [x["sem_seg"].to(self.device) for x in batched_inputs],
            self.backbone.size_divisibility,
            pad_value=self.sem_seg_head.ignore_value,
        ).tensor.long()  # (N, H, W), padding ignored
        _, losses = self.sem_seg_head(features, gt_sem_seg)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        proposals, proposal_losses = self._proposals(images, features, batched_inputs, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        losses.update(proposal_losses)
        losses.update({k: v * self.instance_loss_weight for k, v in detector_losses.items()})
        return losses

    def inference(  # type: ignore[override]  # Detectron2's signature, without detected boxes
        self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True
    ) -> Any:
        """Per image: the dict of the class docstring, or, when not `do_postprocess`,
        `(instances, sem_seg_logits)` lists on the network input."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        sem_seg_logits, _ = self.sem_seg_head(features)
        proposals, _ = self._proposals(images, features, batched_inputs, None)
        detections, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return detections, sem_seg_logits
        results = []
        for logits, det, inputs, size in zip(
            sem_seg_logits, detections, batched_inputs, images.image_sizes
        ):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            sem_seg = sem_seg_postprocess(logits, size, height, width)
            instances = detector_postprocess(det, height, width)
            panoptic = combine_semantic_and_instance_outputs(
                instances,
                sem_seg.argmax(dim=0),
                overlap_thresh=self.combine_overlap_thresh,
                stuff_area_thresh=self.combine_stuff_area_thresh,
                instances_score_thresh=self.combine_instances_score_thresh,
            )
            results.append({"sem_seg": sem_seg, "instances": instances, "panoptic_seg": panoptic})
        return results

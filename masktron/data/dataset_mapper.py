"""`DatasetMapper`: one dataset dict -> the dict a model takes (Detectron2's default mapper)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from masktron.data import detection_utils as utils
from masktron.data import transforms as T

__all__ = ["DatasetMapper"]

logger = logging.getLogger(__name__)


def _is_config(obj: Any) -> bool:
    return hasattr(obj, "INPUT") and hasattr(obj, "MODEL")


class DatasetMapper:
    """Read the image, augment it and its annotations together, build the targets.

    Build it from a config, `DatasetMapper(cfg, is_train=True)`, or explicitly,
    `DatasetMapper(is_train, augmentations=[...], image_format="BGR", ...)`.

    Output dict: the input's keys (`file_name`, `image_id`, `height`, `width` of the original
    image, ...) plus `image`, a (C, H, W) uint8 tensor of the augmented image in
    `image_format`; in training `instances` (`Instances` with `gt_boxes`, `gt_classes` and,
    with `use_instance_mask`, `gt_masks`), crowd annotations dropped and empty instances
    filtered out; `sem_seg` (H, W) int64 when the dict has a `sem_seg_file_name`; with
    `precomputed_proposal_topk`, `proposals` (`Instances` with `proposal_boxes` and
    `objectness_logits`, in the augmented image's frame) from the dict's `proposal_*` fields
    (see `load_proposals_into_dataset`), in training and inference. In inference the
    annotations are removed.

    Args:
        is_train: training (annotations transformed into `instances`) or inference.
        augmentations: augmentations or fixed transforms applied in order.
        image_format: the format `read_image` reads into ("BGR", "RGB", "L", ...).
        use_instance_mask: keep segmentations and build `gt_masks`.
        use_keypoint: keep `keypoints` and build `gt_keypoints`.
        instance_mask_format: "polygon" (`PolygonMasks`) or "bitmask" (`BitMasks`).
        recompute_boxes: replace boxes by the tight boxes of the (cropped) masks.
        keypoint_hflip_indices: each keypoint's mirror index (`create_keypoint_hflip_indices`),
            needed when `use_keypoint` and the augmentations flip horizontally.
        precomputed_proposal_topk: keep this many of each image's precomputed proposals
            (transformed like the image, clipped, empty ones dropped); None: leave them.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        cfg = args[0] if args and _is_config(args[0]) else kwargs.pop("cfg", None)
        if cfg is not None:
            self._setup(**self.from_config(cfg, *args[1:], **kwargs))
        else:
            self._setup(*args, **kwargs)

    def _setup(
        self,
        is_train: bool = True,
        *,
        augmentations: Sequence[T.Augmentation | T.Transform],
        image_format: str = "BGR",
        use_instance_mask: bool = False,
        use_keypoint: bool = False,
        instance_mask_format: str = "polygon",
        recompute_boxes: bool = False,
        precomputed_proposal_topk: int | None = None,
        keypoint_hflip_indices: Sequence[int] | None = None,
    ) -> None:
        if recompute_boxes and not use_instance_mask:
            raise ValueError("recompute_boxes needs use_instance_mask=True")
        if instance_mask_format not in ("polygon", "bitmask"):
            raise ValueError(
                f"instance_mask_format must be 'polygon' or 'bitmask', got {instance_mask_format!r}"
            )
        self.is_train = bool(is_train)
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.use_keypoint = use_keypoint
        self.keypoint_hflip_indices = keypoint_hflip_indices
        self.instance_mask_format = instance_mask_format
        self.recompute_boxes = recompute_boxes
        self.proposal_topk = precomputed_proposal_topk
        mode = "training" if self.is_train else "inference"
        logger.info("[DatasetMapper] augmentations used in %s: %s", mode, self.augmentations)

    @classmethod
    def from_config(cls, cfg: Any, is_train: bool = True) -> dict[str, Any]:
        """The explicit arguments that `DatasetMapper(cfg, is_train)` uses."""
        augs: list[T.Augmentation | T.Transform] = list(utils.build_augmentation(cfg, is_train))
        recompute_boxes = False
        if cfg.INPUT.CROP.ENABLED and is_train:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, list(cfg.INPUT.CROP.SIZE)))
            recompute_boxes = bool(cfg.MODEL.MASK_ON)
        topk = None
        if cfg.MODEL.LOAD_PROPOSALS:
            d = cfg.DATASETS
            topk = (
                d.PRECOMPUTED_PROPOSAL_TOPK_TRAIN if is_train else d.PRECOMPUTED_PROPOSAL_TOPK_TEST
            )
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "use_instance_mask": bool(cfg.MODEL.MASK_ON),
            "instance_mask_format": cfg.INPUT.MASK_FORMAT,
            "use_keypoint": bool(cfg.MODEL.KEYPOINT_ON),
            "keypoint_hflip_indices": (
                utils.create_keypoint_hflip_indices(cfg.DATASETS.TRAIN)
                if cfg.MODEL.KEYPOINT_ON
                else None
            ),
            "recompute_boxes": recompute_boxes,
            "precomputed_proposal_topk": topk,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        """Map one dataset dict (not modified) to model input; see the class docstring."""
        dataset_dict = copy.deepcopy(dataset_dict)
        if "file_name" not in dataset_dict:
            raise KeyError(f"dataset dict has no 'file_name': keys are {sorted(dataset_dict)}")
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)

        sem_seg_gt = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L")[:, :, 0]

        aug_input = T.AugInput(image, sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg

        image_shape = image.shape[:2]  # (h, w)
        # (H, W, C) -> (C, H, W), kept uint8 as Detectron2 does: the model normalises it.
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype("long"))

        # Before the annotations go in inference: Fast R-CNN needs its proposals at test time.
        if self.proposal_topk is not None:
            try:
                utils.transform_proposals(
                    dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
                )
            except (ValueError, FloatingPointError) as e:  # malformed or non-finite boxes
                raise ValueError(f"{self._where(dataset_dict)}: proposals: {e}") from e

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict

        if "annotations" in dataset_dict:
            try:
                dataset_dict["instances"] = self._instances(
                    dataset_dict.pop("annotations"), transforms, image_shape
                )
            except KeyError as e:
                raise ValueError(f"{self._where(dataset_dict)}: an annotation has no {e}") from e
            except (ValueError, TypeError) as e:
                raise ValueError(f"{self._where(dataset_dict)}: {e}") from e
        return dataset_dict

    @staticmethod
    def _where(dataset_dict: dict) -> str:
        return f"{dataset_dict['file_name']} (image_id {dataset_dict.get('image_id')})"

    def _instances(
        self, annotations: list[dict], transforms: T.TransformList, image_shape: tuple[int, int]
    ) -> Any:
        annos = []
        for obj in annotations:
            if obj.get("iscrowd", 0) != 0:
                continue
            if not self.use_instance_mask:
                obj.pop("segmentation", None)
            if not self.use_keypoint:
                obj.pop("keypoints", None)
            annos.append(
                utils.transform_instance_annotations(
                    obj,
                    transforms,
                    image_shape,
                    keypoint_hflip_indices=self.keypoint_hflip_indices,
                )
            )
        instances = utils.annotations_to_instances(
            annos, image_shape, mask_format=self.instance_mask_format
        )
        # After a crop the intersection of the old box with the window is not the tight box of
        # what is left of the object; recompute it from the masks.
        if self.recompute_boxes and instances.has("gt_masks"):
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        return utils.filter_empty_instances(instances)

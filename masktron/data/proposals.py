"""Precomputed proposals (Fast R-CNN): Detectron2's proposal files, read safely, and the
per-image step that moves them into the augmented image's frame.

A proposal file is a pickle of a dict with
- "ids": the image ids (ints or strings), matched to the dataset dicts' `image_id` as strings;
- "boxes": one (N_i, 4) float array per image, in the original image's pixels;
- "objectness_logits": one (N_i,) float array per image;
- "bbox_mode" (optional): the `BoxMode` of the boxes, XYXY_ABS by default.
Detectron1 files name "ids" "indexes" and "objectness_logits" "scores".

Proposal files are untrusted input: they are read with masktron's restricted unpickler
(`masktron.checkpoint.safe_pickle.load_pickle`), which admits only arrays, numbers, strings and
containers and refuses a pickle that would import or call anything else. `detectron2://` and
http(s) names are downloaded once into masktron's cache (`get_local_path`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch

from masktron.checkpoint.download import get_local_path
from masktron.checkpoint.safe_pickle import load_pickle
from masktron.data import transforms as T
from masktron.structures import Boxes, BoxMode, Instances

__all__ = ["load_proposals_into_dataset", "transform_proposals"]

logger = logging.getLogger(__name__)

_REQUIRED = ("ids", "boxes", "objectness_logits")
# Detectron1's names for the same fields.
_LEGACY_KEYS = {"indexes": "ids", "scores": "objectness_logits"}
_BOX_MODES = (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def _read_proposal_file(local: str, where: str) -> dict[str, Any]:
    """The file's dict with legacy keys renamed, the layout checked and `bbox_mode` a
    `BoxMode`; `where` names the file in errors."""
    content = load_pickle(local)
    if not isinstance(content, Mapping):
        raise ValueError(
            f"{where}: a proposal file holds a dict with keys {list(_REQUIRED)}, "
            f"got a {type(content).__name__}"
        )
    proposals = dict(content)
    for old, new in _LEGACY_KEYS.items():
        if old in proposals:
            proposals[new] = proposals.pop(old)
    for key in _REQUIRED:
        if key not in proposals:
            raise ValueError(
                f"{where}: field {key!r} is missing (the file has {sorted(map(str, proposals))})"
            )
        if not isinstance(proposals[key], (list, tuple, np.ndarray)):
            raise ValueError(
                f"{where}: field {key!r} must be a list with one entry per image, "
                f"got a {type(proposals[key]).__name__}"
            )
    lengths = {key: len(proposals[key]) for key in _REQUIRED}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"{where}: fields 'ids', 'boxes' and 'objectness_logits' differ in length ({lengths})"
        )
    mode = proposals.get("bbox_mode", BoxMode.XYXY_ABS)
    try:
        mode = BoxMode(int(mode))
    except (TypeError, ValueError):
        mode = None
    if mode not in _BOX_MODES:
        raise ValueError(
            f"{where}: field 'bbox_mode' is {proposals.get('bbox_mode')!r}; proposals must be "
            f"BoxMode.XYXY_ABS (0) or XYWH_ABS (1)"
        )
    proposals["bbox_mode"] = mode
    return proposals


def _image_proposals(
    proposals: dict[str, Any], i: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Entry `i`'s (N, 4) float32 boxes and (N,) float32 logits, sorted by descending logit."""
    image_id = proposals["ids"][i]
    arrays = []
    for key in ("boxes", "objectness_logits"):
        try:
            arrays.append(np.asarray(proposals[key][i], dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{where}: field {key!r} of image {image_id} is not numbers ({e})"
            ) from e
    boxes, logits = arrays
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{where}: field 'boxes' of image {image_id} must be (N, 4), got {boxes.shape}"
        )
    if logits.ndim != 1 or len(logits) != len(boxes):
        raise ValueError(
            f"{where}: field 'objectness_logits' of image {image_id} must be ({len(boxes)},) "
            f"like its boxes, got {logits.shape}"
        )
    # Descending objectness, ties in file order: the mapper keeps the first top-k.
    order = np.argsort(-logits, kind="stable")
    return boxes[order], logits[order]


def load_proposals_into_dataset(
    dataset_dicts: list[dict], proposal_file: str | os.PathLike
) -> list[dict]:
    """Attach each image's precomputed proposals to its dataset dict (in place).

    Args:
        dataset_dicts: dicts with `image_id`; every id must be in the file.
        proposal_file: a local path, `detectron2://` or http(s) URL (downloaded into the cache)
            of a pickle in Detectron2's format (see the module docstring).

    Returns:
        `dataset_dicts`, each with `proposal_boxes` ((N, 4) float32, in the original image's
        pixels, in `proposal_bbox_mode`), `proposal_objectness_logits` ((N,) float32, sorted in
        descending order with the boxes) and `proposal_bbox_mode` (`BoxMode`).

    Raises:
        UnsafePickleError: the pickle references code (it is refused before anything runs).
        ValueError: a field is missing or malformed, or an image of the dataset has no entry;
            the message names the file and the field or image id.
    """
    proposal_file = os.fspath(proposal_file)
    logger.info("Loading proposals from %s", proposal_file)
    local = get_local_path(proposal_file)
    where = proposal_file if local == proposal_file else f"{proposal_file} ({local})"
    proposals = _read_proposal_file(local, where)
    # Ids may be ints in one place and strings in the other: compare them as strings, as
    # Detectron2 does.
    wanted = {str(d["image_id"]) for d in dataset_dicts}
    id_to_index = {str(x): i for i, x in enumerate(proposals["ids"]) if str(x) in wanted}
    missing = [d["image_id"] for d in dataset_dicts if str(d["image_id"]) not in id_to_index]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{where}: no proposals for {len(missing)} image(s) of the dataset, "
            f"image_id {shown}: the file must cover every image of the dataset it is given for"
        )
    for record in dataset_dicts:
        boxes, logits = _image_proposals(proposals, id_to_index[str(record["image_id"])], where)
        record["proposal_boxes"] = boxes
        record["proposal_objectness_logits"] = logits
        record["proposal_bbox_mode"] = proposals["bbox_mode"]
    return dataset_dicts


def transform_proposals(
    dataset_dict: dict,
    image_shape: tuple[int, int],
    transforms: T.Transform | Sequence[T.Transform],
    *,
    proposal_topk: int,
    min_box_size: float = 0,
) -> None:
    """Move a dict's proposals into the augmented image's frame, as `dataset_dict["proposals"]`.

    Does nothing when the dict has no `proposal_boxes`. Otherwise pops `proposal_boxes`,
    `proposal_objectness_logits` and `proposal_bbox_mode`, converts the boxes to XYXY_ABS,
    applies `transforms` (those of the image), clips them to the image, drops boxes with a side
    not above `min_box_size`, and keeps the first `proposal_topk` (the file's boxes are sorted
    by descending objectness when loaded).

    Args:
        dataset_dict: a dataset dict, modified in place.
        image_shape: (height, width) of the transformed image.
        transforms: what was applied to the image.
        proposal_topk: the number of proposals kept.
        min_box_size: minimum width and height, in transformed pixels.

    Sets:
        `dataset_dict["proposals"]`: `Instances(image_shape)` with `proposal_boxes` (Boxes, XYXY
        in the transformed image) and `objectness_logits` ((K,) float32).
    """
    if "proposal_boxes" not in dataset_dict:
        return
    if isinstance(transforms, (list, tuple)):
        transforms = T.TransformList(transforms)
    transforms = cast(T.Transform, transforms)
    mode = dataset_dict.pop("proposal_bbox_mode", BoxMode.XYXY_ABS)
    raw = np.asarray(dataset_dict.pop("proposal_boxes"), dtype=np.float64).reshape(-1, 4)
    boxes = Boxes(transforms.apply_box(BoxMode.convert(raw, mode, BoxMode.XYXY_ABS)))
    logits = torch.as_tensor(
        np.asarray(dataset_dict.pop("proposal_objectness_logits"), dtype=np.float32)
    )
    if len(logits) != len(boxes):
        raise ValueError(f"{len(boxes)} proposal boxes but {len(logits)} objectness logits")
    boxes.clip(image_shape)
    keep = boxes.nonempty(threshold=min_box_size)
    dataset_dict["proposals"] = Instances(
        image_shape,
        proposal_boxes=boxes[keep][:proposal_topk],
        objectness_logits=logits[keep][:proposal_topk],
    )

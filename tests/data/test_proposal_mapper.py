"""Precomputed proposals through `DatasetMapper` and the loaders: transformed exactly like the
ground-truth boxes, clipped, small ones dropped, the top k kept, in training and inference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from proposal_helpers import load_raw, make_proposals, write_proposal_file

from masktron.config import get_cfg
from masktron.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    register_coco_instances,
)
from masktron.data import transforms as T
from masktron.data.datasets import load_coco_json
from masktron.data.detection_utils import transform_proposals
from masktron.data.proposals import load_proposals_into_dataset
from masktron.structures import BoxMode, Instances


@pytest.fixture(scope="module")
def coco_val(shared_data) -> tuple[list[dict], dict]:
    json_file = shared_data / "coco_sample/annotations/instances_val2017.json"
    return load_coco_json(json_file, shared_data / "coco_sample/images/val2017"), load_raw(
        json_file
    )


def _gt_proposal_record(record: dict) -> dict:
    """`record` whose proposals are its non-crowd ground-truth boxes, best first, as XYWH."""
    annos = [a for a in record["annotations"] if not a["iscrowd"]]
    return {
        **copy.deepcopy(record),
        "proposal_boxes": np.array([a["bbox"] for a in annos], dtype=np.float64),
        "proposal_objectness_logits": -np.arange(len(annos), dtype=np.float32),
        "proposal_bbox_mode": BoxMode.XYWH_ABS,
    }


def test_proposals_follow_resize_and_flip_like_gt_boxes(coco_val):
    records, _ = coco_val
    record = _gt_proposal_record(max(records, key=lambda d: len(d["annotations"])))
    before = copy.deepcopy(record)
    h, w = record["height"], record["width"]
    new_h, new_w = h * 2 - 3, w + 5  # unequal x and y scales
    augs = [T.ResizeTransform(h, w, new_h, new_w), T.HFlipTransform(new_w)]
    mapper = DatasetMapper(True, augmentations=augs, precomputed_proposal_topk=1000)
    out = mapper(record)
    assert not any(k.startswith("proposal_") for k in out)
    assert set(record) == set(before)  # the dataset dict keeps its proposals
    proposals, gt = out["proposals"], out["instances"]
    assert isinstance(proposals, Instances) and proposals.image_size == (new_h, new_w)
    assert len(proposals) == len(gt) > 10
    assert torch.equal(proposals.proposal_boxes.tensor, gt.gt_boxes.tensor)
    assert proposals.objectness_logits.dtype == torch.float32
    assert (proposals.objectness_logits.diff() < 0).all()  # the file's order is kept


def test_topk_clip_and_min_box_size():
    boxes = np.array(
        [
            [0, 0, 10, 10],
            [5, 5, 5, 30],
            [-20, -20, 50, 50],
            [40, 40, 80, 45],
            [90, 0, 99, 9],
            [1, 1, 3, 3],
        ],
        dtype=np.float32,
    )
    logits = np.arange(6, 0, -1, dtype=np.float32)
    for topk, min_size, expected in [
        (10, 0, [0, 2, 3, 5]),  # box 1 has no width, box 4 lies outside the 60x64 image
        (2, 0, [0, 2]),
        (10, 4.5, [0, 2, 3]),  # box 3 is only 5 high after clipping, box 5 2 wide
        (10, 5, [0, 2]),
    ]:
        d = {
            "proposal_boxes": boxes,
            "proposal_objectness_logits": logits,
            "proposal_bbox_mode": BoxMode.XYXY_ABS,
        }
        transform_proposals(
            d, (60, 64), [T.NoOpTransform()], proposal_topk=topk, min_box_size=min_size
        )
        clipped = np.clip(boxes[expected], 0, [64, 60, 64, 60])
        np.testing.assert_array_equal(d["proposals"].proposal_boxes.tensor.numpy(), clipped)
        np.testing.assert_array_equal(d["proposals"].objectness_logits.numpy(), logits[expected])
        assert set(d) == {"proposals"}
    untouched = {"image_id": 1}
    transform_proposals(untouched, (60, 64), T.NoOpTransform(), proposal_topk=5)
    assert untouched == {"image_id": 1}


def _cfg(**datasets):
    cfg = get_cfg()
    cfg.MODEL.LOAD_PROPOSALS = True
    cfg.INPUT.MIN_SIZE_TRAIN = [96]
    cfg.INPUT.MAX_SIZE_TRAIN = 160
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 100
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SEED = 3
    for key, value in datasets.items():
        setattr(cfg.DATASETS, key, value)
    return cfg


def test_mapper_from_config_reads_topk():
    cfg = _cfg(PRECOMPUTED_PROPOSAL_TOPK_TRAIN=7, PRECOMPUTED_PROPOSAL_TOPK_TEST=3)
    assert DatasetMapper.from_config(cfg, True)["precomputed_proposal_topk"] == 7
    assert DatasetMapper.from_config(cfg, False)["precomputed_proposal_topk"] == 3
    cfg.MODEL.LOAD_PROPOSALS = False
    assert DatasetMapper(cfg, True).proposal_topk is None


def test_inference_mapper_keeps_topk_proposals_and_drops_annotations(coco_val, tmp_path):
    records, raw = coco_val
    proposals = make_proposals(raw, seed=1, num_random=20)
    dicts = load_proposals_into_dataset(
        copy.deepcopy(records), write_proposal_file(tmp_path / "val.pkl", proposals)
    )
    mapper = DatasetMapper(_cfg(PRECOMPUTED_PROPOSAL_TOPK_TEST=5), is_train=False)
    for d in dicts[:2]:
        out = mapper(d)
        assert "annotations" not in out and "instances" not in out
        h, w = out["image"].shape[1:]
        assert out["proposals"].image_size == (h, w) and len(out["proposals"]) == 5
        # The 5 best of the file, resized (no flip in inference), none of them empty.
        scale = torch.tensor([w / d["width"], h / d["height"]] * 2)
        expected = torch.as_tensor(d["proposal_boxes"][:5]) * scale
        expected = torch.minimum(expected.clamp(min=0), torch.tensor([w, h, w, h]))
        torch.testing.assert_close(out["proposals"].proposal_boxes.tensor, expected)


def test_loaders_load_the_configured_files(shared_data, fresh_name, tmp_path):
    json_file = shared_data / "coco_sample/annotations/instances_val2017.json"
    name = fresh_name()
    register_coco_instances(name, {}, json_file, shared_data / "coco_sample/images/val2017")
    path = write_proposal_file(tmp_path / "val.pkl", make_proposals(load_raw(json_file)))
    cfg = _cfg(
        TRAIN=[name],
        PROPOSAL_FILES_TRAIN=[str(path)],
        TEST=["other", name],
        PROPOSAL_FILES_TEST=["unused.pkl", str(path)],
        PRECOMPUTED_PROPOSAL_TOPK_TEST=4,
    )
    (batch,) = [b for b, _ in zip(build_detection_train_loader(cfg), range(1))]
    for d in batch:
        assert d["proposals"].image_size == tuple(d["image"].shape[1:]) and len(d["proposals"])
    test_items = list(build_detection_test_loader(cfg, name))
    assert len(test_items) == 6 and all(len(x["proposals"]) == 4 for (x,) in test_items)
    # a dataset outside DATASETS.TEST (e.g. DATASETS.VAL for the validation loss) takes the
    # file it has as a DATASETS.TRAIN entry
    cfg.DATASETS.TEST = [name + "x"]
    assert len(list(build_detection_test_loader(cfg, name))) == 6
    cfg.DATASETS.PROPOSAL_FILES_TRAIN = []
    with pytest.raises(ValueError, match=f"{name}' has no proposal file.*PROPOSAL_FILES_TEST"):
        build_detection_test_loader(cfg, name)
    with pytest.raises(ValueError, match="PROPOSAL_FILES_TRAIN"):
        build_detection_train_loader(cfg)

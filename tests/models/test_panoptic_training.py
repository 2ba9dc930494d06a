"""Panoptic FPN trains on real COCO panoptic data (../shared/data/panoptic_sample), read through
the "separated" registration (things from an instances JSON, stuff from PNGs derived from the
panoptic PNGs), an image without objects among them."""

from __future__ import annotations

import json

import pytest
import torch
from test_panoptic_fpn import tiny_cfg
from test_retinanet_training import train_and_compare

from masktron.data import DatasetCatalog, DatasetMapper, register_coco_panoptic_separated
from masktron.data import transforms as T
from masktron.data.builtin_meta import COCO_CATEGORIES, get_builtin_metadata
from masktron.data.datasets.coco_panoptic import separate_coco_semantic_from_panoptic
from masktron.models.build import build_model


@pytest.fixture(scope="module")
def panoptic_inputs(shared_dir, tmp_path_factory):
    root = shared_dir / "data" / "panoptic_sample" / "sample_data"
    tmp = tmp_path_factory.mktemp("panoptic")
    panoptic_json = str(root / "panoptic_examples.json")
    panoptic_root = str(root / "panoptic_examples")
    separate_coco_semantic_from_panoptic(
        panoptic_json, panoptic_root, str(tmp / "stuff"), COCO_CATEGORIES
    )
    # The sample's detection-format JSON lists every segment; COCO's instances files hold
    # only the 80 thing categories, which is what the separated layout reads.
    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    thing_ids = {c["id"] for c in things}
    detections = json.loads((root / "panoptic_coco_detection_format.json").read_text())
    detections["annotations"] = [
        a for a in detections["annotations"] if a["category_id"] in thing_ids
    ]
    detections["categories"] = things
    (tmp / "things.json").write_text(json.dumps(detections))
    name = f"panoptic_sample_test_{tmp.name}"
    register_coco_panoptic_separated(
        name,
        get_builtin_metadata("coco_panoptic_separated"),
        str(root / "input_images"),
        panoptic_root,
        panoptic_json,
        str(tmp / "stuff"),
        str(tmp / "things.json"),
    )
    dicts = DatasetCatalog.get(name + "_separated")
    stuff_only = dict(dicts[0], annotations=[])  # the same photo with no objects annotated
    mapper = DatasetMapper(
        True,
        augmentations=[T.ResizeShortestEdge([160], 256, "choice")],
        image_format="BGR",
        use_instance_mask=True,
        instance_mask_format="bitmask",
    )
    return [mapper(d) for d in [*dicts, stuff_only]]


@pytest.mark.slow
def test_panoptic_fpn_trains_on_real_panoptic_data(panoptic_inputs):
    counts = [len(x["instances"]) for x in panoptic_inputs]
    assert counts[0] > 0 and counts[1] > 0 and counts[2] == 0
    stuff = torch.cat([x["sem_seg"].flatten() for x in panoptic_inputs])
    assert ((stuff > 0) & (stuff < 54)).any() and (stuff == 0).any()  # stuff and things

    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 54
    model = build_model(cfg).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def reset():  # the same proposal and RoI sampling for both evaluations
        torch.manual_seed(1)

    before, after = train_and_compare(model, panoptic_inputs, optimizer, steps=6, reset=reset)
    assert after["loss_sem_seg"] < 0.9 * before["loss_sem_seg"], (before, after)
    assert sum(after.values()) < 0.8 * sum(before.values()), (before, after)

    only_empty = model(panoptic_inputs[2:])
    assert only_empty["loss_box_reg"] == 0 and only_empty["loss_mask"] == 0
    assert all(torch.isfinite(v) for v in only_empty.values())

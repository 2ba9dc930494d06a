"""RetinaNet trains on real COCO images (../shared/data/coco_sample), an image without objects
among them: every step's losses are finite and, at the same loss normaliser, lower after a
few steps than before."""

from __future__ import annotations

import pytest
import torch
from test_retinanet import tiny_cfg

from masktron.data import DatasetMapper, MetadataCatalog, load_coco_json
from masktron.data import transforms as T
from masktron.models.build import build_model

# Two images with objects (2 and 1 of them) and one that COCO annotates with none.
IMAGE_IDS = (403385, 6818, 226111)


def train_and_compare(model, inputs, optimizer, steps: int, reset=lambda: None):
    """Losses of `inputs` before and after `steps` optimizer steps on them, each evaluation
    preceded by `reset()` (which restores any state that changes the losses' scale or
    sampling); asserts every training step's losses are finite."""
    reset()
    with torch.no_grad():
        before = model(inputs)
    for step in range(steps):
        losses = model(inputs)
        assert all(torch.isfinite(v) for v in losses.values()), (step, losses)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    reset()
    with torch.no_grad():
        after = model(inputs)
    return {k: v.item() for k, v in before.items()}, {k: v.item() for k, v in after.items()}


@pytest.fixture(scope="module")
def coco_inputs(shared_dir):
    root = shared_dir / "data" / "coco_sample"
    name = "coco_sample_train_retinanet_test"
    dicts = load_coco_json(
        root / "annotations" / "instances_train2017.json", root / "images" / "train2017", name
    )
    by_id = {d["image_id"]: d for d in dicts}
    mapper = DatasetMapper(
        True, augmentations=[T.ResizeShortestEdge([160], 256, "choice")], image_format="BGR"
    )
    inputs = [mapper(by_id[i]) for i in IMAGE_IDS]
    assert [len(x["instances"]) for x in inputs] == [2, 1, 0]
    return inputs, len(MetadataCatalog.get(name).thing_classes)


@pytest.mark.slow
def test_retinanet_trains_on_real_images(coco_inputs):
    inputs, num_classes = coco_inputs
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.MODEL.RETINANET.NUM_CLASSES = num_classes
    model = build_model(cfg).train()
    start = model.loss_normalizer

    def reset():  # compare at the same point of the normaliser's moving average
        model.loss_normalizer = start

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before, after = train_and_compare(model, inputs, optimizer, steps=6, reset=reset)
    assert after["loss_box_reg"] < 0.95 * before["loss_box_reg"], (before, after)
    assert after["loss_cls"] < before["loss_cls"], (before, after)

    only_empty = model(inputs[2:])
    assert only_empty["loss_box_reg"] == 0 and torch.isfinite(only_empty["loss_cls"])

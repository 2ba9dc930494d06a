"""A tiny Mask R-CNN overfits two real balloon photos: the loss falls by a large factor and the
model then finds every balloon."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from engine_helpers import BALLOON, small_balloon_set, tiny_cfg

from masktron.data import DatasetCatalog, build_detection_test_loader, register_via_instances
from masktron.engine import DefaultTrainer
from masktron.structures import Boxes, pairwise_iou


def gt_masks(record):
    h, w = record["height"], record["width"]
    masks = []
    for anno in record["annotations"]:
        rle = mask_util.merge(mask_util.frPyObjects(anno["segmentation"], h, w))
        masks.append(mask_util.decode(rle).astype(bool))
    return torch.from_numpy(np.stack(masks))


@pytest.mark.slow
def test_tiny_model_overfits_two_balloon_images(tmp_path, single_thread):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON}")
    json_file = small_balloon_set(tmp_path / "data")
    name = "engine_test_overfit_balloon2"
    if name not in DatasetCatalog:
        register_via_instances(name, {"thing_classes": ["balloon"]}, json_file, json_file.parent)
    cfg = tiny_cfg(tmp_path / "out", (name,), max_iter=300)
    cfg.SOLVER.OPTIMIZER = "AdamW"
    cfg.SOLVER.BASE_LR = 0.0015
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    cfg.SOLVER.WARMUP_ITERS = 10
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    torch.manual_seed(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()

    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    first, last = np.mean(losses[:3]), np.mean(losses[-10:])
    assert last < first / 3, (first, last)  # about 2.4 -> 0.3-0.6 depending on the start

    model = trainer.model.eval()
    records = DatasetCatalog.get(name)
    found_boxes = found_masks = 0
    with torch.no_grad():
        for record, batch in zip(records, build_detection_test_loader(cfg, name)):
            pred = model(batch)[0]["instances"]
            assert len(pred) > 0
            boxes = Boxes(torch.tensor([a["bbox"] for a in record["annotations"]]).float())
            found_boxes += int((pairwise_iou(boxes, pred.pred_boxes).max(dim=1).values > 0.5).sum())
            gt = gt_masks(record).flatten(1).float()  # (G, H*W)
            pm = pred.pred_masks.flatten(1).float()  # (P, H*W)
            inter = gt @ pm.T
            union = gt.sum(1, keepdim=True) + pm.sum(1) - inter
            found_masks += int(((inter / union).max(dim=1).values > 0.5).sum())
    num_gt = sum(len(r["annotations"]) for r in records)
    assert num_gt == 4
    assert found_boxes == num_gt and found_masks >= num_gt - 1

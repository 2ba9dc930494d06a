"""Tiny training configs on real data (two balloon photos, shrunk) for the engine tests."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from masktron import model_zoo

REPO = Path(__file__).resolve().parents[2]
BALLOON = Path(os.environ.get("MASKTRON_SHARED", REPO.parent / "shared")) / "data" / "balloon"

# Two training photos of the balloon set with 1 and 3 balloons.
TWO_BALLOONS = ("34020010494_e5cb88e1c4_k.jpg", "15290896925_884ab33fd3_k.jpg")


def small_balloon_set(folder: Path, files=TWO_BALLOONS, short_side: int = 160) -> Path:
    """Copy `files` of the balloon training set into `folder`, resized so their short side is
    `short_side`, with a VIA JSON whose polygons are scaled alike. Returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(BALLOON / "train" / "via_region_data.json", encoding="utf-8") as f:
        entries = {v["filename"]: v for v in json.load(f).values()}
    out = {}
    for name in files:
        entry = json.loads(json.dumps(entries[name]))
        with Image.open(BALLOON / "train" / name) as im:
            scale = short_side / min(im.size)
            size = (round(im.width * scale), round(im.height * scale))
            im.convert("RGB").resize(size, Image.BILINEAR).save(folder / name, quality=95)
        regions = entry["regions"]
        for region in regions.values() if isinstance(regions, dict) else regions:
            shape = region["shape_attributes"]
            shape["all_points_x"] = [x * scale for x in shape["all_points_x"]]
            shape["all_points_y"] = [y * scale for y in shape["all_points_y"]]
        out[name] = entry
    path = folder / "via_region_data.json"
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def tiny_cfg(output_dir: Path | str, train: tuple[str, ...] = (), max_iter: int = 4):
    """Mask R-CNN R50-FPN with 1/8 of the widths, few proposals, 160 px images, CPU, SGD."""
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 300
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 300
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.INPUT.MIN_SIZE_TRAIN = [160]
    cfg.INPUT.MAX_SIZE_TRAIN = 320
    cfg.INPUT.MIN_SIZE_TEST = 160
    cfg.INPUT.MAX_SIZE_TEST = 320
    cfg.DATASETS.TRAIN = list(train)
    cfg.DATASETS.TEST = []
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.STEPS = []
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.CHECKPOINT_PERIOD = 1000
    cfg.SEED = 0
    cfg.OUTPUT_DIR = str(output_dir)
    return cfg


def distributed_train_worker(json_file: str, output_dir: str, max_iter: int) -> int:
    """Run in each process that `launch` starts: train the tiny model on the two balloons and
    save this process's initial and final parameters as `rank<r>.pt`."""
    import torch

    from masktron.data import DatasetCatalog, register_via_instances
    from masktron.engine import DefaultTrainer, comm

    name = "engine_test_balloon2_ddp"
    if name not in DatasetCatalog:
        register_via_instances(
            name, {"thing_classes": ["balloon"]}, json_file, Path(json_file).parent
        )
    cfg = tiny_cfg(output_dir, (name,), max_iter=max_iter)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer.model.module  # DistributedDataParallel's
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer.train()
    final = {k: v.detach().clone() for k, v in model.named_parameters()}
    # Only the main process makes OUTPUT_DIR (its writers make it on first write, as Detectron2's
    # do), so another rank may finish before it exists.
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    torch.save({"initial": initial, "final": final}, f"{output_dir}/rank{comm.get_rank()}.pt")
    return comm.get_world_size()


@contextmanager
def masktron_logging_kept(threads: int | None = None) -> Iterator[None]:
    """Give the "masktron" logger its handlers, level and propagation back afterwards (runs
    configure it); optionally run with `threads` torch threads meanwhile."""
    import torch

    logger = logging.getLogger("masktron")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate

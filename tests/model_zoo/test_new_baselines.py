"""Detectron2's new-baseline LazyConfig zoo (`new_baselines/*.py`): every config loads with its
schedule, URL and published figures; the R50 and RegNetY-4GF models build through
`instantiate`, load a checkpoint in Detectron2's model-zoo format by exact names and predict on
a real photo the way a LazyConfig predictor does (test mapper, then the model); the LSJ training
pipeline feeds a training step of the R50 model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import masktron.data.transforms as T
from masktron import model_zoo
from masktron.backbones.regnet import RegNet
from masktron.checkpoint import DetectionCheckpointer
from masktron.config import instantiate
from masktron.layers.batch_norm import NaiveSyncBatchNorm
from masktron.structures import BoxMode

R50 = "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py"
REGNETY = "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ.py"
EPOCHS = {"50ep": 0.5, "100ep": 1, "200ep": 2, "400ep": 4}
BACKBONES = ["R_50", "R_101", "regnetx_4gf_dds", "regnety_4gf_dds"]
NAMES = [
    f"new_baselines/mask_rcnn_{b}_FPN_{e}_LSJ.py"
    for b in BACKBONES
    for e in EPOCHS
    if e != "50ep" or b == "R_50"
]


def test_every_new_baseline_loads_with_its_schedule_and_weights():
    for name in NAMES:
        cfg = model_zoo.get_config(name)
        scale = EPOCHS[name.rsplit("_", 2)[-2]]
        assert cfg.train.max_iter == int(184375 * scale)
        sched = cfg.lr_multiplier.scheduler
        assert list(sched.milestones) == [int(m * scale) for m in (163889, 177546)]
        assert sched.num_updates == cfg.train.max_iter
        assert cfg.optimizer.lr == 0.1 and cfg.dataloader.train.total_batch_size == 64
        assert cfg.train.init_checkpoint == "" and cfg.model.backbone.norm == "SyncBN"
        assert cfg.model.roi_heads.mask_head.conv_norm == "naiveSyncBN_N"
        augs = [a._target_ for a in cfg.dataloader.train.mapper.augmentations]
        assert augs == [T.ResizeScale, T.FixedSizeCrop, T.RandomFlip]
        bottom_up = cfg.model.backbone.bottom_up
        if "regnet" in name:
            assert bottom_up._target_ is RegNet and bottom_up.norm == "SyncBN"
            assert (bottom_up.depth, bottom_up.get("se_ratio", 0.0)) == (
                (23, 0.0) if "regnetx" in name else (22, 0.25)
            )
        else:
            assert bottom_up.stages.depth == (101 if "R_101" in name else 50)
        if name.endswith("50ep_LSJ.py"):  # Detectron2 published no weights for it
            with pytest.raises(RuntimeError, match="no trained weights"):
                model_zoo.get_checkpoint_url(name)
            continue
        trained = model_zoo.get_config(name, trained=True)
        url = f"https://dl.fbaipublicfiles.com/detectron2/{name[:-3]}/"
        assert trained.train.init_checkpoint.startswith(url)
        assert trained.train.init_checkpoint.endswith(".pkl")
    assert model_zoo.ZOO[R50[:-3]].box_ap == 44.6 and model_zoo.ZOO[R50[:-3]].mask_ap == 40.3
    assert model_zoo.get_checkpoint_url(REGNETY.replace("100ep", "400ep")).endswith(
        "42045954/model_final_ef3a80.pkl"
    )


def _tiny(cfg, size: int):
    """Test with `size`-pixel images; keep the 10 best detections (random weights score low).
    100 test proposals, not 1000: each takes the same path through the box head, and with
    every score kept (threshold 0) the per-class NMS of 1000 x 80 candidates dominated."""
    cfg.model.proposal_generator.post_nms_topk = (1000, 100)  # (train, test)
    cfg.dataloader.test.mapper.augmentations[0].short_edge_length = size
    cfg.dataloader.test.mapper.augmentations[0].max_size = size * 2
    cfg.model.roi_heads.box_predictor.test_score_thresh = 0.0
    cfg.model.roi_heads.box_predictor.test_topk_per_image = 10
    return cfg


def _fixture_state(model: torch.nn.Module, image: torch.Tensor, fixture_weights) -> dict:
    """Checkpoint tensors for the model: the fixture rule's values for its names and shapes
    (its state dict's, as a Detectron2 checkpoint of this architecture has them), with the
    backbone's BatchNorm statistics measured on `image` so that the random network's features
    stay bounded (the rule alone lets them grow layer after layer)."""
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in fixture_weights(shapes, 0).items()}, strict=False
    )
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # the statistics of this one batch
    model.train()
    with torch.no_grad():
        model.backbone(model.preprocess_image([{"image": image}]).tensor)
    state = model.state_dict()  # once: each call walks the whole model
    return {k: state[k].numpy().copy() for k in shapes}


def _predict(cfg, model: torch.nn.Module, image_bgr: np.ndarray):
    """What a LazyConfig predictor does: the test mapper's augmentations, then the model."""
    mapper = instantiate(cfg.dataloader.test.mapper)
    h, w = image_bgr.shape[:2]
    resized = mapper.augmentations(T.AugInput(image_bgr)).apply_image(image_bgr)
    image = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
    with torch.no_grad():
        return model([{"image": image, "height": h, "width": w}])[0]["instances"]


@pytest.fixture(scope="module")
def photo_path(shared_dir) -> Path:
    return shared_dir / "data" / "images" / "astronaut.png"


@pytest.fixture(scope="module")
def photo(photo_path) -> np.ndarray:
    rgb = np.asarray(Image.open(photo_path).convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])  # BGR, as the configs' image_format


@pytest.mark.slow
@pytest.mark.parametrize("name", [R50, REGNETY])  # RegNetX: RegNetY's blocks without SE
def test_lsj_model_loads_zoo_checkpoint_and_predicts(name, photo, fixture_weights_module, tmp_path):
    cfg = _tiny(model_zoo.get_config(name), 128)
    model = instantiate(cfg.model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert isinstance(model.roi_heads.box_head.conv1.norm, NaiveSyncBatchNorm)
    image = torch.as_tensor(photo[::4, ::4].astype("float32").transpose(2, 0, 1))
    weights = _fixture_state(model, image, fixture_weights_module.fixture_weights)
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:  # Detectron2's model-zoo file format
        meta = {"__author__": "Detectron2 Model Zoo", "matching_heuristics": False}
        pickle.dump({"model": weights, **meta}, f)

    cfg.train.init_checkpoint = str(path)
    loaded = instantiate(cfg.model)
    DetectionCheckpointer(loaded).load(cfg.train.init_checkpoint)
    state = loaded.state_dict()
    names = {k for k in state if not k.endswith("num_batches_tracked")}
    assert names == set(weights)  # every tensor of the file, by its exact name
    for k in names:
        torch.testing.assert_close(state[k], torch.from_numpy(weights[k]), rtol=0, atol=0)

    loaded.eval()  # SyncBN on one CPU process and at inference: BatchNorm's running statistics
    instances = _predict(cfg, loaded, photo)
    assert len(instances) == 10 and instances.image_size == photo.shape[:2]
    boxes = instances.pred_boxes.tensor
    assert torch.isfinite(boxes).all() and (instances.scores > 0.01).all()
    assert (boxes[:, 2] <= photo.shape[1]).all() and (boxes[:, 3] <= photo.shape[0]).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) > 1).all()
    assert instances.pred_masks.shape[1:] == photo.shape[:2]


@pytest.mark.slow
def test_lsj_training_pipeline_feeds_a_training_step(photo, photo_path):
    """ResizeScale + FixedSizeCrop + flip through the config's mapper (boxes recomputed from
    the cropped masks), then one training step of the R50 LSJ model: finite losses."""
    cfg = model_zoo.get_config(R50)
    size = 128
    cfg.dataloader.train.mapper.augmentations[0].target_height = size
    cfg.dataloader.train.mapper.augmentations[0].target_width = size
    cfg.dataloader.train.mapper.augmentations[1].crop_size = (size, size)
    mapper = instantiate(cfg.dataloader.train.mapper)
    assert mapper.recompute_boxes
    h, w = photo.shape[:2]
    x0, y0, x1, y1 = w * 0.3, h * 0.1, w * 0.7, h * 0.9
    record = {
        "file_name": str(photo_path),
        "height": h,
        "width": w,
        "annotations": [
            {
                "bbox": [x0, y0, x1, y1],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                "iscrowd": 0,
            }
        ],
    }
    torch.manual_seed(0)
    np.random.seed(0)
    sample = mapper(record)
    assert tuple(sample["image"].shape) == (3, size, size)  # cropped or padded to the crop
    gt = sample["instances"].gt_boxes.tensor
    assert ((gt >= 0) & (gt <= size)).all()

    model = model_zoo.get(R50)  # the zoo's LazyConfig model, in training mode
    losses = model([sample])
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())

    # the optimizer and schedule, made as a LazyConfig training script makes them
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.1
    norm_groups = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    assert norm_groups and optimizer.defaults["weight_decay"] == 4e-5
    multiplier = instantiate(cfg.lr_multiplier)
    assert multiplier(0.0) == pytest.approx(0.067)  # warmup start
    assert multiplier(0.5) == 1.0 and multiplier(170000 / 184375) == pytest.approx(0.1)


def test_regnet_config_saves_and_loads_with_its_block_classes(tmp_path):
    """The classes RegNet takes as arguments (`stem_class`, `block_class`) survive a YAML
    save/load: written as calls that find them again by name; a lambda still cannot be saved."""
    from masktron.backbones.regnet import ResBottleneckBlock, SimpleStem
    from masktron.config import LazyConfig

    cfg = model_zoo.get_config(REGNETY)
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(cfg, path)
    loaded = LazyConfig.load(path)
    bottom_up = loaded.model.backbone.bottom_up
    assert instantiate(bottom_up.stem_class) is SimpleStem
    assert instantiate(bottom_up.block_class) is ResBottleneckBlock
    assert loaded.train.max_iter == cfg.train.max_iter
    assert list(loaded.lr_multiplier.scheduler.milestones) == [163889, 177546]
    cfg.model.roi_heads.box_head.conv_norm = lambda c: torch.nn.BatchNorm2d(c)
    with pytest.raises(ValueError, match="cannot save the config as YAML"):
        LazyConfig.save(cfg, path)


def test_detectron2_style_regnetx_config_ports_by_import_rename(tmp_path):
    """A Detectron2 LazyConfig putting RegNetX-4GF (FrozenBN, freeze_at=2, as its 1x zoo
    config) under the common Mask R-CNN, imports renamed to masktron: the backbone builds,
    freezes the stem and s1, and gives the FPN levels at strides 4..64."""
    from masktron.config import LazyConfig
    from masktron.layers import FrozenBatchNorm2d

    path = tmp_path / "mask_rcnn_regnetx_4gf_dds_fpn_1x.py"
    path.write_text(
        "from masktron import model_zoo\n"
        "from masktron.config import LazyCall as L\n"
        "from masktron.config import LazyConfig\n"
        "from masktron.modeling.backbone import RegNet\n"
        "from masktron.modeling.backbone.regnet import SimpleStem, ResBottleneckBlock\n"
        'common = model_zoo.get_config_file("common/models/mask_rcnn_fpn.py")\n'
        'model = LazyConfig.load(common, "model")\n'
        "model.backbone.bottom_up = L(RegNet)(\n"
        "    stem_class=SimpleStem, stem_width=32, block_class=ResBottleneckBlock,\n"
        "    depth=23, w_a=38.65, w_0=96, w_m=2.43, group_width=40,\n"
        '    freeze_at=2, norm="FrozenBN", out_features=["s1", "s2", "s3", "s4"],\n'
        ")\n"
        "model.pixel_std = [57.375, 57.120, 58.395]\n"
    )
    cfg = LazyConfig.load(str(path))
    backbone = instantiate(cfg.model.backbone)
    bottom_up = backbone.bottom_up
    frozen = [*bottom_up.stem.parameters(), *bottom_up.s1.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in bottom_up.s2.parameters())
    assert isinstance(bottom_up.s3.b1.f.a_bn, FrozenBatchNorm2d)  # norm="FrozenBN" everywhere
    with torch.no_grad():
        out = backbone(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (1, 256, 16, 16),
        "p3": (1, 256, 8, 8),
        "p4": (1, 256, 4, 4),
        "p5": (1, 256, 2, 2),
        "p6": (1, 256, 1, 1),
    }

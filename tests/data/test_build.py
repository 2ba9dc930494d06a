"""Loaders: dataset filtering, batch layout, determinism across workers and after resuming."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch

from masktron.config import get_cfg
from masktron.data import (
    DatasetCatalog,
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from masktron.structures import Instances


def _usable(anno: dict) -> bool:
    """Non-crowd with a box, and with at least one valid polygon if it has polygons."""
    segm = anno.get("segmentation")
    if isinstance(segm, list) and segm:
        if not any(len(p) % 2 == 0 and len(p) >= 6 for p in segm):
            return False
    return anno["iscrowd"] == 0


def _cfg(name: str, **solver):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = [name]
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MIN_SIZE_TRAIN = [96, 128]
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 100
    cfg.SOLVER.IMS_PER_BATCH = solver.get("batch", 4)
    cfg.DATALOADER.NUM_WORKERS = solver.get("workers", 0)
    cfg.SEED = solver.get("seed", 7)
    return cfg


def _no_train(name: str):
    cfg = _cfg(name)
    cfg.DATASETS.TRAIN = []
    return cfg


def _fingerprint(d: dict) -> tuple:
    """What identifies a mapped sample: image id, pixels, boxes (which show a flip)."""
    return (d["image_id"], int(d["image"].sum()), float(d["instances"].gt_boxes.tensor.sum()))


def _summary(batches) -> list:
    return [[d if isinstance(d, tuple) else _fingerprint(d) for d in batch] for batch in batches]


class _FingerprintMapper:
    """DatasetMapper followed by `_fingerprint` (small, picklable results from workers)."""

    def __init__(self, cfg):
        self.mapper = DatasetMapper(cfg, True)

    def __call__(self, d: dict) -> tuple:
        return _fingerprint(self.mapper(d))


def _instances_pickle() -> bool:
    probe = Instances((1, 1))
    probe.x = torch.zeros(1)
    try:
        pickle.loads(pickle.dumps(probe))
    except RecursionError:
        return False
    return True


def test_get_detection_dataset_dicts_filters_like_detectron2(coco_train):
    name, raw = coco_train
    with_usable = {a["image_id"] for a in raw["annotations"] if _usable(a)}
    assert len(get_detection_dataset_dicts(name)) == len(with_usable)
    assert len(get_detection_dataset_dicts([name], filter_empty=False)) == len(raw["images"])
    with pytest.raises(KeyError, match="did you mean"):
        get_detection_dataset_dicts(name + "x")
    with pytest.raises(ValueError, match="DATASETS.TRAIN"):
        build_detection_train_loader(_no_train(name))


def test_empty_dataset_is_an_error(fresh_name):
    name = fresh_name()
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(ValueError, match="is empty"):
        get_detection_dataset_dicts(name)


def test_train_loader_batches(coco_train):
    name, raw = coco_train
    loader = build_detection_train_loader(_cfg(name, batch=4))
    ids = {img["id"]: (img["width"], img["height"]) for img in raw["images"]}
    for batch in itertools.islice(iter(loader), 6):
        assert len(batch) == 4
        groups = {ids[d["image_id"]][0] > ids[d["image_id"]][1] for d in batch}
        assert len(groups) == 1  # landscape and portrait images are never mixed
        for d in batch:
            short = min(d["image"].shape[1:])
            assert d["image"].dtype == torch.uint8 and (
                short in (96, 128) or max(d["image"].shape) == 200
            )
            assert len(d["instances"]) > 0


def test_train_loader_deterministic_across_workers_and_resume(coco_train):
    name, _ = coco_train
    state = np.random.get_state()[1].copy()
    first = _summary(itertools.islice(iter(build_detection_train_loader(_cfg(name))), 5))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    again = _summary(itertools.islice(iter(build_detection_train_loader(_cfg(name))), 5))
    assert again == first
    cfg = _cfg(name, workers=2)
    workers = build_detection_train_loader(cfg, mapper=_FingerprintMapper(cfg))
    assert _summary(itertools.islice(iter(workers), 5)) == first
    resumed = build_detection_train_loader(_cfg(name), start_iter=3)
    assert _summary(itertools.islice(iter(resumed), 2)) == first[3:5]
    other = _summary(itertools.islice(iter(build_detection_train_loader(_cfg(name, seed=8))), 5))
    assert other != first


def test_train_loader_workers_send_instances(coco_train):
    if not _instances_pickle():
        pytest.skip("masktron.structures.Instances cannot be unpickled (recursion in __getattr__)")
    name, _ = coco_train
    cfg = _cfg(name, workers=2)
    first = _summary(itertools.islice(iter(build_detection_train_loader(_cfg(name))), 2))
    assert _summary(itertools.islice(iter(build_detection_train_loader(cfg)), 2)) == first


def test_train_loader_options_and_errors(coco_train):
    name, _ = coco_train
    with pytest.raises(ValueError, match="IMS_PER_BATCH"):
        build_detection_train_loader(_cfg(name, batch=0))
    cfg = _cfg(name)
    cfg.DATALOADER.SAMPLER_TRAIN = "Nope"
    with pytest.raises(ValueError, match="SAMPLER_TRAIN 'Nope'"):
        build_detection_train_loader(cfg)
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.3
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    (batch,) = itertools.islice(iter(build_detection_train_loader(cfg)), 1)
    assert len(batch) == 4
    dicts = get_detection_dataset_dicts(name)[:3]
    loader = build_detection_train_loader(
        dataset=dicts, mapper=lambda d: d["image_id"], total_batch_size=2, seed=0
    )
    batch = next(iter(loader))
    assert len(batch) == 2 and set(batch) <= {d["image_id"] for d in dicts}


def test_test_loader_visits_every_image_once(coco_train):
    name, raw = coco_train
    loader = build_detection_test_loader(_cfg(name), name)
    seen = []
    for batch in loader:
        (d,) = batch
        assert "instances" not in d and min(d["image"].shape[1:]) <= 64
        seen.append(d["image_id"])
    assert seen == sorted(img["id"] for img in raw["images"])
    dicts = get_detection_dataset_dicts(name, filter_empty=False)[:2]
    direct = build_detection_test_loader(dicts, mapper=lambda d: d["image_id"])
    assert [b[0] for b in direct] == [d["image_id"] for d in dicts]


def test_augmentation_randomness_is_per_sample_and_restores_global_state(coco_train):
    name, _ = coco_train
    dicts = get_detection_dataset_dicts(name)[:4]

    def draw(d: dict) -> tuple:
        return (d["image_id"], float(np.random.rand()), float(torch.rand(1)))

    torch_state = torch.get_rng_state()
    runs = [
        next(
            iter(
                build_detection_train_loader(dataset=dicts, mapper=draw, total_batch_size=4, seed=1)
            )
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert len({r[1] for r in runs[0]}) == 4  # each sample has its own seed
    assert torch.equal(torch.get_rng_state(), torch_state)

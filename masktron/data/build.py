"""Data loaders for training (infinite, seeded, grouped by aspect ratio) and inference.

Training batches are reproducible: with a seed (`cfg.SEED >= 0`, or `seed=`), the sequence of
batches -- which images, and how each was augmented -- is a function of the seed, the rank and
the world size only, whatever `DATALOADER.NUM_WORKERS` is. Batches of indices are formed in the
main process (grouped by aspect ratio from the dicts' width/height), and each sample is mapped
under random generators seeded from (seed, rank, batch number, position in batch). To resume
at iteration k, build the loader with `start_iter=k`: it yields exactly the batches an
uninterrupted run would have yielded from iteration k on (skipping costs no image reads).
"""

from __future__ import annotations

import itertools
import logging
import operator
import random
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any, cast

import numpy as np
import torch
import torch.utils.data as torchdata
from torch.utils.data import Sampler

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    ToIterableDataset,
    aspect_group,
)
from masktron.data.dataset_mapper import DatasetMapper
from masktron.data.detection_utils import check_metadata_consistency
from masktron.data.image_io import get_image_size
from masktron.data.keypoint_utils import filter_images_with_few_keypoints
from masktron.data.proposals import load_proposals_into_dataset
from masktron.data.samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    get_rank,
    get_world_size,
    shared_random_seed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "filter_images_with_few_keypoints",
    "filter_images_with_only_crowd_annotations",
    "get_detection_dataset_dicts",
    "load_proposals_into_dataset",
    "print_instances_class_histogram",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]


def filter_images_with_only_crowd_annotations(dataset_dicts: list[dict]) -> list[dict]:
    """Keep images with at least one non-crowd annotation (Detectron2's training filter)."""
    kept = [d for d in dataset_dicts if any(a.get("iscrowd", 0) == 0 for a in d["annotations"])]
    logger.info(
        "Removed %d images with no usable annotations. %d images left.",
        len(dataset_dicts) - len(kept),
        len(kept),
    )
    return kept


def print_instances_class_histogram(dataset_dicts: list[dict], class_names: Sequence[str]) -> None:
    """Log the number of non-crowd instances per class; fail on out-of-range category ids."""
    counts = np.zeros(len(class_names), dtype=np.int64)
    for d in dataset_dicts:
        for a in d["annotations"]:
            if a.get("iscrowd", 0):
                continue
            c = int(a["category_id"])
            if not 0 <= c < len(class_names):
                raise ValueError(
                    f"{d.get('file_name')}: category_id {c} is outside [0, {len(class_names)}) "
                    f"of the dataset's {len(class_names)} thing_classes"
                )
            counts[c] += 1
    rows = ", ".join(f"{name}: {n}" for name, n in zip(class_names, counts.tolist()))
    logger.info("Instances per category (%d in all): %s", int(counts.sum()), rows)


def get_detection_dataset_dicts(
    names: str | Sequence[str],
    filter_empty: bool = True,
    min_keypoints: int = 0,
    proposal_files: Sequence[str] | None = None,
    check_consistency: bool = True,
) -> list[dict]:
    """Load and concatenate registered datasets.

    Args:
        names: dataset name(s) registered in `DatasetCatalog`.
        filter_empty: drop images without a non-crowd annotation (training does).
        proposal_files: one precomputed-proposal file per dataset of `names`, loaded into its
            dicts (`load_proposals_into_dataset`) before the empty images are dropped.
        check_consistency: require equal `thing_classes` across the datasets.
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError(
            "get_detection_dataset_dicts: no dataset names given (is DATASETS.TRAIN/TEST empty?)"
        )
    if proposal_files is not None and len(proposal_files) != len(names):
        raise ValueError(
            f"{len(proposal_files)} proposal file(s) for {len(names)} dataset(s) {list(names)}: "
            "give one per dataset (DATASETS.PROPOSAL_FILES_TRAIN/_TEST follow "
            "DATASETS.TRAIN/TEST)"
        )
    per_dataset = [DatasetCatalog.get(name) for name in names]
    for name, dicts in zip(names, per_dataset):
        if not dicts:
            raise ValueError(f"dataset {name!r} is empty")
    if proposal_files is not None:
        per_dataset = [
            load_proposals_into_dataset(dicts, proposal_file)
            for dicts, proposal_file in zip(per_dataset, proposal_files)
        ]
    dataset_dicts = list(itertools.chain.from_iterable(per_dataset))
    has_instances = "annotations" in dataset_dicts[0]
    if filter_empty and has_instances:
        dataset_dicts = filter_images_with_only_crowd_annotations(dataset_dicts)
    if min_keypoints > 0 and has_instances:
        dataset_dicts = filter_images_with_few_keypoints(dataset_dicts, min_keypoints)
    if check_consistency and has_instances:
        class_names = MetadataCatalog.get(names[0]).get("thing_classes")
        if class_names is not None:
            check_metadata_consistency("thing_classes", names)
            print_instances_class_histogram(dataset_dicts, class_names)
    if not dataset_dicts:
        raise ValueError(f"no images with annotations left in {', '.join(names)}")
    return dataset_dicts


def trivial_batch_collator(batch: list) -> list:
    """A batch stays a list of dicts (models take lists of differently sized images)."""
    return batch


def worker_init_reset_seed(worker_id: int) -> None:
    """Give each loader worker its own NumPy/Python seeds, derived from torch's worker seed."""
    seed = torch.initial_seed() % 2**31
    np.random.seed(seed)
    random.seed(seed)


class _SeededBatches(Sampler[list[tuple[int, int]]]):
    """Batches of (index, per-sample seed), skipping the first `start_batch` batches."""

    def __init__(self, batches: Sampler[list[int]], seed: int, rank: int, start_batch: int = 0):
        self.batches = batches
        self.seed, self.rank, self.start_batch = seed, rank, start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        stream = itertools.islice(iter(self.batches), self.start_batch, None)
        for k, batch in enumerate(stream, start=self.start_batch):
            seq = np.random.SeedSequence([self.seed, self.rank, k])
            seeds = seq.generate_state(len(batch))
            yield [(idx, int(s)) for idx, s in zip(batch, seeds)]


def _group_ids(dataset_dicts: list[dict]) -> list[int]:
    ids = []
    for d in dataset_dicts:
        if "width" not in d or "height" not in d:
            h, w = get_image_size(d["file_name"])
            d = {"width": w, "height": h}
        ids.append(aspect_group(d))
    return ids


def build_batch_data_loader(
    dataset_dicts: Any,
    sampler: Any,
    mapper: Callable[[dict], Any] | int | None = None,
    total_batch_size: int | None = None,
    *,
    aspect_ratio_grouping: bool | None = None,
    num_workers: int = 0,
    collate_fn: Callable[[list], Any] | None = None,
    seed: int | None = None,
    start_iter: int = 0,
    drop_last: bool = True,
) -> Any:
    """An infinite loader of per-rank batches of `total_batch_size // world_size` mapped dicts.

    Two call forms:

    - masktron's `(dataset_dicts, sampler, mapper, total_batch_size)`: dicts are mapped in the
      loader with per-sample augmentation seeds (reproducible and resumable);
    - Detectron2's `(dataset, sampler, total_batch_size)`: `dataset` is already mapped (a
      map-style dataset, read through `ToIterableDataset`, or an iterable one).

    Args:
        aspect_ratio_grouping: batches of only landscape or only portrait images (default True
            for masktron's form, False for Detectron2's, as there).
        seed: base of the per-sample augmentation seeds; default the sampler's `seed`
            attribute, else a random shared seed.
        start_iter: number of leading batches to skip.
        drop_last: Detectron2's form without grouping: drop a last incomplete batch.
    """
    if isinstance(mapper, int) or (mapper is None and total_batch_size is not None):
        total = mapper if isinstance(mapper, int) else total_batch_size
        return _mapped_batch_loader(
            dataset_dicts,
            sampler,
            int(total),  # type: ignore[arg-type]
            aspect_ratio_grouping=bool(aspect_ratio_grouping),
            num_workers=num_workers,
            collate_fn=collate_fn,
            drop_last=drop_last,
        )
    if mapper is None or total_batch_size is None:
        raise TypeError("build_batch_data_loader needs a mapper and total_batch_size")
    if aspect_ratio_grouping is None:
        aspect_ratio_grouping = True
    batch_size = _per_rank_batch_size(total_batch_size, "SOLVER.IMS_PER_BATCH")
    if batch_size > len(dataset_dicts):
        # Each batch would repeat images, holding batch_size of them in memory at once.
        world_size = get_world_size()
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) asks for {batch_size} images per batch "
            f"per process, but the training set has only {len(dataset_dicts)}; use at most "
            f"{len(dataset_dicts) * world_size}"
        )
    group_ids = _group_ids(dataset_dicts) if aspect_ratio_grouping else [0] * len(dataset_dicts)
    batches = GroupedBatchSampler(sampler, group_ids, batch_size)
    if seed is None:
        seed = getattr(sampler, "seed", None)
    if seed is None:
        seed = shared_random_seed()
    return torchdata.DataLoader(
        MapDataset(DatasetFromList(dataset_dicts, copy=False), mapper),
        batch_sampler=_SeededBatches(batches, seed, get_rank(), start_iter),
        num_workers=num_workers,
        collate_fn=collate_fn or trivial_batch_collator,
        worker_init_fn=worker_init_reset_seed,
        # Worker seeds come from this generator, not from the global torch RNG.
        generator=torch.Generator().manual_seed(seed),
    )


def _per_rank_batch_size(total_batch_size: int, name: str = "total_batch_size") -> int:
    world_size = get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"{name} ({total_batch_size}) must be a positive multiple of the "
            f"number of processes ({world_size})"
        )
    return total_batch_size // world_size


def _mapped_batch_loader(
    dataset: Any,
    sampler: Any,
    total_batch_size: int,
    *,
    aspect_ratio_grouping: bool,
    num_workers: int,
    collate_fn: Callable[[list], Any] | None,
    drop_last: bool,
) -> Any:
    """Detectron2's form of `build_batch_data_loader`: batches of an already mapped dataset."""
    batch_size = _per_rank_batch_size(total_batch_size)
    if not isinstance(dataset, torchdata.IterableDataset):
        dataset = ToIterableDataset(dataset, sampler, shard_chunk_size=batch_size)
    if aspect_ratio_grouping:
        loader = torchdata.DataLoader(
            dataset,
            num_workers=num_workers,
            collate_fn=operator.itemgetter(0),  # single items; grouped below
            worker_init_fn=worker_init_reset_seed,
        )
        grouped = AspectRatioGroupedDataset(loader, batch_size)
        return grouped if collate_fn is None else MapDataset(grouped, collate_fn)
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_fn or trivial_batch_collator,
        worker_init_fn=worker_init_reset_seed,
    )


def _is_config(obj: Any) -> bool:
    return hasattr(obj, "DATALOADER") and hasattr(obj, "SOLVER")


def _train_sampler(cfg: Any, dataset_dicts: list[dict], seed: int | None) -> TrainingSampler:
    name = cfg.DATALOADER.SAMPLER_TRAIN
    if name == "TrainingSampler":
        return TrainingSampler(len(dataset_dicts), seed=seed)
    if name == "RepeatFactorTrainingSampler":
        factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            dataset_dicts, cfg.DATALOADER.REPEAT_THRESHOLD
        )
        return RepeatFactorTrainingSampler(factors, seed=seed)
    raise ValueError(
        f"DATALOADER.SAMPLER_TRAIN {name!r} is unknown: use 'TrainingSampler' or "
        "'RepeatFactorTrainingSampler'"
    )


def build_detection_train_loader(
    cfg: Any = None,
    mapper: Callable[[dict], Any] | None = None,
    *,
    dataset: list[dict] | torchdata.IterableDataset | None = None,
    sampler: TrainingSampler | None = None,
    total_batch_size: int | None = None,
    aspect_ratio_grouping: bool | None = None,
    num_workers: int | None = None,
    collate_fn: Callable[[list], Any] | None = None,
    seed: int | None = None,
    start_iter: int = 0,
) -> torchdata.DataLoader:
    """The training loader: an infinite iterable of lists of mapped dicts (one list per step).

    `build_detection_train_loader(cfg)` reads `DATASETS.TRAIN` (images without non-crowd
    annotations dropped when `DATALOADER.FILTER_EMPTY_ANNOTATIONS`; with
    `MODEL.LOAD_PROPOSALS`, the proposals of `DATASETS.PROPOSAL_FILES_TRAIN`),
    `DatasetMapper(cfg, True)`, `DATALOADER.SAMPLER_TRAIN`/`ASPECT_RATIO_GROUPING`/`NUM_WORKERS`,
    `SOLVER.IMS_PER_BATCH` (split over processes) and `SEED` (< 0: a random shared seed).
    Keyword arguments override those; without `cfg` give `dataset` and `mapper` (and
    `total_batch_size`).

    Args:
        seed: sampling and augmentation seed; default `cfg.SEED` when >= 0.
        start_iter: skip the batches of iterations 0..start_iter-1 (for resuming).
    """
    if cfg is not None and not _is_config(cfg):
        raise TypeError("build_detection_train_loader: the first argument must be a config")
    if seed is None and cfg is not None and cfg.SEED >= 0:
        seed = int(cfg.SEED)
    if dataset is None:
        if cfg is None:
            raise TypeError("build_detection_train_loader needs a config or dataset=")
        dataset = get_detection_dataset_dicts(
            list(cfg.DATASETS.TRAIN),
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=(
                cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0
            ),
            proposal_files=(
                list(cfg.DATASETS.PROPOSAL_FILES_TRAIN) if cfg.MODEL.LOAD_PROPOSALS else None
            ),
        )
    if mapper is None:
        if cfg is None:
            raise TypeError("build_detection_train_loader needs a config or mapper=")
        mapper = DatasetMapper(cfg, True)
    if isinstance(dataset, torchdata.IterableDataset):
        # Detectron2's iterable form (e.g. `ToIterableDataset(dicts, TrainingSampler(n))`): the
        # dataset orders itself; its items are mapped and batched as they come.
        if sampler is not None:
            raise ValueError("build_detection_train_loader: an iterable dataset takes no sampler")
        if total_batch_size is None:
            if cfg is None:
                raise TypeError("build_detection_train_loader needs a config or total_batch_size=")
            total_batch_size = cfg.SOLVER.IMS_PER_BATCH
        if aspect_ratio_grouping is None:
            aspect_ratio_grouping = (
                cfg.DATALOADER.ASPECT_RATIO_GROUPING if cfg is not None else True
            )
        return _mapped_batch_loader(
            MapDataset(dataset, mapper),
            None,
            total_batch_size,
            aspect_ratio_grouping=aspect_ratio_grouping,
            num_workers=(
                num_workers
                if num_workers is not None
                else (cfg.DATALOADER.NUM_WORKERS if cfg is not None else 0)
            ),
            collate_fn=collate_fn,
            drop_last=True,
        )
    if sampler is None:
        if cfg is not None:
            sampler = _train_sampler(cfg, dataset, seed)
        else:
            sampler = TrainingSampler(len(dataset), seed=seed)
    if total_batch_size is None:
        if cfg is None:
            raise TypeError("build_detection_train_loader needs a config or total_batch_size=")
        total_batch_size = cfg.SOLVER.IMS_PER_BATCH
    if aspect_ratio_grouping is None:
        aspect_ratio_grouping = cfg.DATALOADER.ASPECT_RATIO_GROUPING if cfg is not None else True
    if num_workers is None:
        num_workers = cfg.DATALOADER.NUM_WORKERS if cfg is not None else 0
    return build_batch_data_loader(
        dataset,
        sampler,
        mapper,
        total_batch_size,
        aspect_ratio_grouping=aspect_ratio_grouping,
        num_workers=num_workers,
        collate_fn=collate_fn,
        seed=seed,
        start_iter=start_iter,
    )


def _test_proposal_files(cfg: Any, names: list[str]) -> list[str]:
    """The proposal file of each name: the `DATASETS.PROPOSAL_FILES_TEST` entry at its index in
    `DATASETS.TEST` (the test loader evaluates one dataset at a time, as Detectron2's does),
    else the `PROPOSAL_FILES_TRAIN` entry at its index in `DATASETS.TRAIN` (a `DATASETS.VAL`
    set for the validation loss may be either)."""
    d = cfg.DATASETS
    known: dict[str, str] = {}
    for datasets, files in ((d.TRAIN, d.PROPOSAL_FILES_TRAIN), (d.TEST, d.PROPOSAL_FILES_TEST)):
        known.update(zip(datasets, files))  # TEST's entry wins for a name in both
    out = []
    for name in names:
        if name not in known:
            raise ValueError(
                f"MODEL.LOAD_PROPOSALS is set but dataset {name!r} has no proposal file: "
                f"DATASETS.PROPOSAL_FILES_TEST ({list(d.PROPOSAL_FILES_TEST)}) gives one per "
                f"dataset of DATASETS.TEST ({list(d.TEST)}), in the same order (and "
                "PROPOSAL_FILES_TRAIN per DATASETS.TRAIN)"
            )
        out.append(known[name])
    return out


def build_detection_test_loader(
    cfg: Any = None,
    dataset_name: str | Sequence[str] | None = None,
    mapper: Callable[[dict], Any] | None = None,
    *,
    dataset: list[dict] | torchdata.Dataset | None = None,
    sampler: Sampler[int] | None = None,
    batch_size: int = 1,
    num_workers: int | None = None,
    collate_fn: Callable[[list], Any] | None = None,
) -> torchdata.DataLoader:
    """The inference loader: every image once (this process's share), in order, batch 1.

    `build_detection_test_loader(cfg, "coco_2017_val")` maps with `DatasetMapper(cfg, False)`
    and uses `DATALOADER.NUM_WORKERS` workers; with `MODEL.LOAD_PROPOSALS` each dataset gets
    the file of `DATASETS.PROPOSAL_FILES_TEST` at its position in `DATASETS.TEST`. Or pass
    `dataset=` (a list of dicts) and `mapper=`.
    """
    if cfg is not None and not _is_config(cfg):
        if isinstance(cfg, (list, torchdata.Dataset)) and dataset is None:
            cfg, dataset = None, cfg  # Detectron2 also accepts the dataset first
        else:
            raise TypeError("build_detection_test_loader: the first argument must be a config")
    if dataset is None:
        if dataset_name is None:
            raise TypeError("build_detection_test_loader needs dataset_name or dataset=")
        names = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name)
        proposal_files = None
        if cfg is not None and cfg.MODEL.LOAD_PROPOSALS:
            proposal_files = _test_proposal_files(cfg, names)
        dataset = get_detection_dataset_dicts(
            names, filter_empty=False, proposal_files=proposal_files
        )
    if mapper is None:
        if cfg is None:
            raise TypeError("build_detection_test_loader needs a config or mapper=")
        mapper = DatasetMapper(cfg, False)
    if num_workers is None:
        num_workers = cfg.DATALOADER.NUM_WORKERS if cfg is not None else 0
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if isinstance(dataset, torchdata.IterableDataset):
        # An iterable dataset (e.g. `ToIterableDataset(ds, InferenceSampler(len(ds)))`) orders
        # and shards itself, as in Detectron2.
        if sampler is not None:
            raise ValueError("build_detection_test_loader: an iterable dataset takes no sampler")
    elif sampler is None:
        # A map-style test dataset has a length (torch's Dataset type declares none).
        sampler = InferenceSampler(len(cast(Sized, dataset)))
    return torchdata.DataLoader(
        MapDataset(dataset, mapper),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=collate_fn or trivial_batch_collator,
    )

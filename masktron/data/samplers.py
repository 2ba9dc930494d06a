"""Index samplers for training (infinite, seeded, sharded by rank) and inference (exact shards).

Training streams follow Detectron2: one global infinite stream of indices,
`shuffle(range(N)) + shuffle(range(N)) + ...` from a generator seeded once, and rank r of W
takes `stream[r::W]`. The seed must be the same on every rank; `seed=None` draws one on rank 0
and broadcasts it (`shared_random_seed`).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

_T = TypeVar("_T")

__all__ = [
    "GroupedBatchSampler",
    "group_into_batches",
    "InferenceSampler",
    "RepeatFactorTrainingSampler",
    "TrainingSampler",
    "get_rank",
    "get_world_size",
    "shared_random_seed",
]


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def shared_random_seed() -> int:
    """A random int in [0, 2^31) drawn from NumPy on rank 0 and shared with every rank."""
    seed = int(np.random.randint(2**31))
    if get_world_size() > 1:
        box = [seed]
        dist.broadcast_object_list(box, src=0)
        seed = int(box[0])
    return seed


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return rank, world_size


class TrainingSampler(Sampler[int]):
    """Infinite stream of dataset indices for this rank.

    Args:
        size: dataset length (> 0).
        shuffle: a fresh permutation per pass; else 0..N-1 repeated.
        seed: the shuffling seed, identical on all ranks; None: `shared_random_seed()`.
        rank, world_size: default to torch.distributed's (0 and 1 when not initialised).
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int | None = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty dataset, got size {size}")
        self._size = int(size)
        self._shuffle = shuffle
        self._seed = int(shared_random_seed() if seed is None else seed)
        self._rank, self._world_size = _rank_and_world(rank, world_size)

    @property
    def seed(self) -> int:
        return self._seed

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=g).tolist()
            else:
                yield from range(self._size)


class RepeatFactorTrainingSampler(TrainingSampler):
    """Like `TrainingSampler`, but image i appears `repeat_factors[i]` times per pass on average.

    Fractional factors are rounded stochastically each pass (LVIS paper, appendix B.2).
    """

    def __init__(
        self,
        repeat_factors: torch.Tensor | Sequence[float],
        *,
        shuffle: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        super().__init__(len(factors), shuffle, seed, rank=rank, world_size=world_size)
        self._int_part = torch.trunc(factors)
        self._frac_part = factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: list[dict], repeat_thresh: float
    ) -> torch.Tensor:
        """r(image) = max over its categories c of max(1, sqrt(t / f(c))).

        f(c) is the fraction of images that contain category c; t is `repeat_thresh`.
        """
        category_freq: dict[int, float] = defaultdict(float)
        for d in dataset_dicts:
            for cat_id in {a["category_id"] for a in d["annotations"]}:
                category_freq[cat_id] += 1
        for cat_id in category_freq:
            category_freq[cat_id] /= len(dataset_dicts)
        category_rep = {c: max(1.0, math.sqrt(repeat_thresh / f)) for c, f in category_freq.items()}
        factors = [
            max((category_rep[a["category_id"]] for a in d["annotations"]), default=1.0)
            for d in dataset_dicts
        ]
        return torch.tensor(factors, dtype=torch.float32)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            rands = torch.rand(len(self._frac_part), generator=g)
            counts = (self._int_part + (rands < self._frac_part).float()).long()
            indices = torch.repeat_interleave(torch.arange(len(counts)), counts)
            if self._shuffle:
                indices = indices[torch.randperm(len(indices), generator=g)]
            yield from indices.tolist()


class InferenceSampler(Sampler[int]):
    """This rank's contiguous share of 0..N-1, each index exactly once over all ranks.

    Shares differ by at most one: the first N % W ranks get one more.
    """

    def __init__(self, size: int, *, rank: int | None = None, world_size: int | None = None):
        if size <= 0:
            raise ValueError(f"InferenceSampler needs a non-empty dataset, got size {size}")
        self._size = int(size)
        rank, world_size = _rank_and_world(rank, world_size)
        self._local_indices = self._get_local_indices(self._size, world_size, rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        """The indices rank `rank` of `world_size` evaluates (Detectron2's static method)."""
        shard, left = divmod(total_size, world_size)
        sizes = [shard + int(r < left) for r in range(world_size)]
        begin = sum(sizes[:rank])
        return range(begin, min(begin + sizes[rank], total_size))

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices from `sampler`, each batch from a single group.

    Indices are put in per-group buckets in the order the sampler yields them; a bucket that
    reaches `batch_size` is emitted and emptied (what Detectron2's `AspectRatioGroupedDataset`
    does after mapping; here on indices, before any image is read). Incomplete buckets are
    dropped when a finite sampler ends.

    Args:
        sampler: yields dataset indices (may be infinite).
        group_ids: group of each dataset index, e.g. 0 for landscape (w > h), 1 otherwise.
        batch_size: indices per batch.
    """

    def __init__(self, sampler: Sampler[int], group_ids: Sequence[int], batch_size: int):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.group_ids = np.asarray(group_ids)
        self.batch_size = int(batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = (int(i) for i in self.sampler)
        yield from group_into_batches(indices, lambda i: int(self.group_ids[i]), self.batch_size)


def group_into_batches(
    items: Iterable[_T], group_of: Callable[[_T], int], batch_size: int
) -> Iterator[list[_T]]:
    """Batches of `batch_size` items of one group each, emitted as soon as a group fills one."""
    buckets: dict[int, list[_T]] = defaultdict(list)
    for item in items:
        bucket = buckets[group_of(item)]
        bucket.append(item)
        if len(bucket) == batch_size:
            yield bucket[:]
            bucket.clear()

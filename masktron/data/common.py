"""Dataset wrappers for the loaders: a compact list of dicts, a mapped view, aspect grouping."""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as torchdata

__all__ = ["AspectRatioGroupedDataset", "DatasetFromList", "MapDataset", "seeded_rngs"]

logger = logging.getLogger(__name__)


class DatasetFromList(torchdata.Dataset):
    """A list of dataset dicts as a map-style dataset.

    With `serialize=True` (default) the dicts are pickled into one NumPy byte buffer, so data
    loader workers share it copy-on-write without touching millions of Python objects (a list of
    dicts would be copied page by page as reference counts change). The buffer holds our own
    in-memory objects, never data read from a file.

    Args:
        lst: the dataset dicts.
        copy: return a deep copy on access (when not serialized), so mappers can modify it.
        serialize: store pickled, as described above.
    """

    def __init__(self, lst: list, copy: bool = True, serialize: bool = True):
        self._copy = copy
        self._serialize = serialize
        if serialize:
            chunks = [np.frombuffer(pickle.dumps(x, protocol=-1), dtype=np.uint8) for x in lst]
            self._addr = np.cumsum([len(c) for c in chunks], dtype=np.int64)
            self._data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)
            logger.info("Serialized dataset takes %.2f MiB", len(self._data) / 1024**2)
        else:
            self._lst = lst

    def __len__(self) -> int:
        return len(self._addr) if self._serialize else len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._serialize:
            start = 0 if idx == 0 else int(self._addr[idx - 1])
            end = int(self._addr[idx])
            return pickle.loads(self._data[start:end].tobytes())
        return copy.deepcopy(self._lst[idx]) if self._copy else self._lst[idx]


@contextlib.contextmanager
def seeded_rngs(seed: int | None) -> Iterator[None]:
    """Seed NumPy's, Python's and torch's CPU global generators inside the block only.

    The previous states are restored on exit, so seeding one sample does not disturb the
    caller's random streams (the training loop's, when the loader has no worker processes).
    """
    if seed is None:
        yield
        return
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            np.random.seed(seed)
            random.seed(seed)
            torch.random.default_generator.manual_seed(seed)  # CPU only: GPU RNGs untouched
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


class MapDataset(torchdata.Dataset):
    """`map_func(dataset[i])`, retrying another index when it returns None.

    Keys are dataset indices, or `(index, seed)` pairs: then the global random generators are
    seeded with `seed` while mapping, which makes random augmentation a function of the seed
    (the training loader derives one per sample from its position in the stream).
    """

    _MAX_RETRIES = 100

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # As Detectron2: an iterable dataset gives an iterable map (items that map to None
        # are skipped). Unpickling calls __new__ without arguments.
        dataset = args[0] if args else kwargs.get("dataset")
        if isinstance(dataset, torchdata.IterableDataset):
            return _MapIterableDataset(dataset, args[1] if len(args) > 1 else kwargs["map_func"])
        return super().__new__(cls)

    def __init__(self, dataset: Any, map_func: Callable[[Any], Any]):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)
        self._fallback: set[int] = set(range(len(dataset)))

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        idx, seed = key if isinstance(key, tuple) else (key, None)
        idx = int(idx)
        retry_rng = random.Random(seed if seed is not None else idx)
        for attempt in range(self._MAX_RETRIES):
            with seeded_rngs(None if seed is None else (seed + attempt) % 2**32):
                data = self._map_func(self._dataset[idx])
            if data is not None:
                self._fallback.add(idx)
                return data
            self._fallback.discard(idx)
            if attempt == 2:
                logger.warning("failed to map dataset item %d after 3 tries; retrying others", idx)
            if not self._fallback:
                break
            idx = retry_rng.choice(sorted(self._fallback))
        raise RuntimeError(
            f"the mapper returned None for {self._MAX_RETRIES} dataset items in a row; "
            "check the mapper and the annotations"
        )


class _MapIterableDataset(torchdata.IterableDataset):
    """`map_func` over an iterable dataset, skipping items it maps to None."""

    def __init__(self, dataset: torchdata.IterableDataset, map_func: Callable[[Any], Any]):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)

    def __len__(self) -> int:
        return len(self._dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for item in self._dataset:
            mapped = self._map_func(item)
            if mapped is not None:
                yield mapped


class ToIterableDataset(torchdata.IterableDataset):
    """`dataset[i]` for the indices of `sampler`, as an iterable dataset (Detectron2's class).

    With `shard_sampler`, each loader worker takes its own chunks of `shard_chunk_size`
    consecutive indices (worker w of W gets chunks w, w + W, ...), so several workers together
    yield each index of the sampler once, in chunk order.

    Args:
        dataset: a map-style dataset.
        sampler: an iterable of indices (e.g. an infinite `TrainingSampler`).
        shard_sampler: split the indices among loader workers (False: every worker yields
            all of them, for samplers that already differ per worker).
        shard_chunk_size: indices per chunk.
    """

    def __init__(
        self,
        dataset: Any,
        sampler: Iterable[int],
        shard_sampler: bool = True,
        shard_chunk_size: int = 1,
    ):
        if isinstance(dataset, torchdata.IterableDataset):
            raise TypeError("ToIterableDataset needs a map-style dataset")
        if shard_chunk_size < 1:
            raise ValueError(f"shard_chunk_size must be >= 1, got {shard_chunk_size}")
        self.dataset = dataset
        self.sampler = sampler
        self.shard_sampler = shard_sampler
        self.shard_chunk_size = shard_chunk_size

    def _indices(self) -> Iterator[int]:
        info = torchdata.get_worker_info()
        if not self.shard_sampler or info is None or info.num_workers == 1:
            yield from self.sampler
            return
        chunk = self.shard_chunk_size
        for k, idx in enumerate(self.sampler):
            if (k // chunk) % info.num_workers == info.id:
                yield idx

    def __iter__(self) -> Iterator[Any]:
        for idx in self._indices():
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class PicklableWrapper:
    """Wrap a function so that it pickles even when it is a lambda or a closure (with
    cloudpickle), as data-loader workers started by "spawn" need (Detectron2's class)."""

    def __init__(self, obj: Any):
        while isinstance(obj, PicklableWrapper):
            obj = obj._obj
        self._obj: Any = obj

    def __reduce__(self) -> tuple:
        import cloudpickle

        return cloudpickle.loads, (cloudpickle.dumps(self._obj),)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._obj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "_obj":  # not yet set (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self._obj, name)


def aspect_group(d: dict) -> int:
    """0 for landscape images (w > h), 1 otherwise."""
    return 0 if d["width"] > d["height"] else 1


class AspectRatioGroupedDataset(torchdata.IterableDataset):
    """Batch mapped dicts so each batch holds only landscape or only portrait/square images.

    Wraps an iterable of mapped dicts (with `width`/`height`); yields lists of `batch_size`.
    The standard loader groups indices before mapping instead (`GroupedBatchSampler`); this is
    Detectron2's class for custom pipelines.

    As Detectron2's, the two buckets (`_buckets`: landscape, portrait) live on the object: a
    batch is taken out of its bucket before it is yielded, so a consumer that stops early
    leaves no full bucket behind, and a partial bucket is completed by the next pass.
    """

    def __init__(self, dataset: Iterable[dict], batch_size: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self._buckets: list[list[dict]] = [[], []]

    def __iter__(self) -> Iterator[list[dict]]:
        for d in self.dataset:
            bucket = self._buckets[aspect_group(d)]
            bucket.append(d)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                del bucket[:]
                yield batch

"""Detectron2 data behaviours: iterable datasets through MapDataset and DatasetCatalog,
RandomCrop's argument checks and repr, BitMasks from a plain list of polygons."""

import numpy as np
import pytest
import torch.utils.data as torchdata

from masktron.data import DatasetCatalog, MapDataset
from masktron.data import transforms as T
from masktron.structures import BitMasks


class _Numbers(torchdata.IterableDataset):
    def __iter__(self):
        return iter(range(6))


def test_map_dataset_over_an_iterable_dataset():
    mapped = MapDataset(_Numbers(), lambda x: None if x % 2 else x * 10)
    assert isinstance(mapped, torchdata.IterableDataset)
    assert list(mapped) == [0, 20, 40]
    assert MapDataset([1, 2], lambda x: x + 1)[1] == 3  # lists stay indexable


def test_dataset_catalog_returns_iterable_datasets():
    name = "d2_compat_iterable_numbers"
    DatasetCatalog.register(name, _Numbers)
    try:
        assert list(DatasetCatalog.get(name)) == list(range(6))
    finally:
        DatasetCatalog.remove(name)


def test_random_crop_checks_sizes_against_the_image():
    crop = T.RandomCrop("relative", (100, 100))  # accepted, as in Detectron2
    assert repr(crop) == "RandomCrop(crop_type='relative', crop_size=(100, 100))"
    with pytest.raises(ValueError, match=r"relative crop sizes must be in \(0, 1\]"):
        crop.get_transform(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        T.RandomCrop("bogus", (1, 1))
    assert repr(T.RandomFlip()) == "RandomFlip()"
    assert repr(T.RandomFlip(prob=0.3)) == "RandomFlip(prob=0.3)"


def test_bitmasks_from_a_plain_polygon_list():
    empty = BitMasks.from_polygon_masks([], 5, 7)
    assert tuple(empty.tensor.shape) == (0, 5, 7)
    square = [[np.array([1.0, 1.0, 4.0, 1.0, 4.0, 4.0, 1.0, 4.0])]]
    masks = BitMasks.from_polygon_masks(square, 6, 6)
    assert masks.tensor.shape == (1, 6, 6) and masks.tensor[0, 2, 2]


def test_to_iterable_dataset_and_detectron2_batch_loader():
    import itertools

    from masktron.data import DatasetFromList, ToIterableDataset, build_batch_data_loader
    from masktron.data.samplers import InferenceSampler, TrainingSampler

    data = DatasetFromList(list(range(10)))
    assert list(ToIterableDataset(data, range(3, 7))) == [3, 4, 5, 6]
    # Detectron2's form: an already mapped dataset, a sampler and the total batch size.
    loader = build_batch_data_loader(data, TrainingSampler(10, seed=1), 4)
    batches = list(itertools.islice(loader, 5))
    assert all(len(b) == 4 for b in batches)
    assert set(itertools.chain(*batches[:2])) <= set(range(10))
    # Its static helper: shard sizes differ by at most one, the first ranks get more.
    shards = [InferenceSampler._get_local_indices(10, 3, r) for r in range(3)]
    assert [list(s) for s in shards] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_random_apply_probability_out_of_range():
    with pytest.raises(AssertionError, match=r"\[0, 1\]"):  # what Detectron2 raises
        T.RandomApply(T.NoOpTransform(), prob=1.5)
    with pytest.raises(ValueError):
        T.RandomApply(T.NoOpTransform(), prob=-0.1)


def test_map_dataset_with_a_lambda_pickles():
    import pickle

    from masktron.data import DatasetFromList

    offset = 3
    mapped = MapDataset(DatasetFromList([1, 2, 3]), lambda x: x + offset)
    again = pickle.loads(pickle.dumps(mapped))  # as a "spawn" data-loader worker receives it
    assert again[0] == 4 and again[2] == 6

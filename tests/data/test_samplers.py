"""Samplers: Detectron2's infinite seeded streams, rank sharding, exact inference shards."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from masktron.data.samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)


def _take(sampler, n: int) -> list[int]:
    return list(itertools.islice(iter(sampler), n))


def test_training_sampler_is_seeded_permutations():
    stream = _take(TrainingSampler(7, seed=3), 21)
    g = torch.Generator().manual_seed(3)
    expected = [i for _ in range(3) for i in torch.randperm(7, generator=g).tolist()]
    assert stream == expected
    assert stream[:7] != stream[7:14]  # a fresh permutation each pass
    assert _take(TrainingSampler(7, seed=3), 21) == stream
    assert _take(TrainingSampler(7, seed=4), 21) != stream
    assert _take(TrainingSampler(4, shuffle=False, seed=0), 9) == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    with pytest.raises(ValueError, match="non-empty"):
        TrainingSampler(0, seed=0)


def test_training_sampler_ranks_interleave_the_global_stream():
    full = _take(TrainingSampler(10, seed=1), 60)
    shards = [_take(TrainingSampler(10, seed=1, rank=r, world_size=3), 20) for r in range(3)]
    for r in range(3):
        assert shards[r] == full[r::3]
    with pytest.raises(ValueError, match="rank 3"):
        TrainingSampler(10, seed=1, rank=3, world_size=3)


def test_training_sampler_without_seed_draws_one():
    a, b = TrainingSampler(5), TrainingSampler(5)
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**31
    assert sorted(_take(a, 5)) == list(range(5)) and sorted(_take(b, 5)) == list(range(5))


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_inference_sampler_covers_each_index_once(world_size):
    shards = [list(InferenceSampler(10, rank=r, world_size=world_size)) for r in range(world_size)]
    assert list(itertools.chain(*shards)) == list(range(10))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert len(InferenceSampler(10, rank=0, world_size=world_size)) == sizes[0]


def test_repeat_factors_follow_lvis_formula():
    dicts = [
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}, {"category_id": 1}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": []},
    ]
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.5)
    # f(0) = 4/5 -> r = 1; f(1) = 1/5 -> r = sqrt(0.5 / 0.2); images without annotations: 1.
    r1 = math.sqrt(0.5 / 0.2)
    assert factors.tolist() == pytest.approx([1.0, r1, 1.0, 1.0, 1.0])
    factors = torch.tensor([1.0] * 100 + [2.5] * 100 + [0.0] * 100)
    sampler = RepeatFactorTrainingSampler(factors, seed=0)
    counts = torch.bincount(torch.tensor(_take(sampler, 14000)), minlength=300)
    assert counts[200:].sum() == 0
    assert counts[100:200].sum() / counts[:100].sum() == pytest.approx(2.5, rel=0.05)


def test_grouped_batch_sampler_keeps_groups_and_order():
    sampler = [0, 1, 2, 3, 4, 5, 6, 7, 8]
    group_ids = [0, 1, 0, 0, 1, 1, 0, 1, 0]
    batches = list(GroupedBatchSampler(sampler, group_ids, 2))
    assert batches == [[0, 2], [1, 4], [3, 6], [5, 7]]  # the lone 8 is dropped at the end
    for batch in batches:
        assert len({group_ids[i] for i in batch}) == 1
    with pytest.raises(ValueError):
        GroupedBatchSampler(sampler, group_ids, 0)


def _distributed_worker(rank: int, world_size: int, port: int, out: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        torch.manual_seed(rank)  # different local states: the seed must still agree
        import numpy as np

        np.random.seed(rank)
        sampler = TrainingSampler(9)  # seed=None: shared from rank 0
        out[rank] = (sampler.seed, _take(sampler, 12))
    finally:
        dist.destroy_process_group()


def test_shared_seed_across_processes():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.start_processes(
        _distributed_worker, args=(2, port, out), nprocs=2, join=True, start_method="fork"
    )
    (seed0, shard0), (seed1, shard1) = out[0], out[1]
    assert seed0 == seed1
    full = _take(TrainingSampler(9, seed=seed0), 24)
    assert shard0 == full[0::2] and shard1 == full[1::2]

"""`NaiveSyncBatchNorm`: with its all-reduce simulated for two processes, training statistics
are those of the two batches together (weighted by batch size in stats_mode "N", empty
batches allowed); on one process and in eval mode it is BatchNorm2d."""

from __future__ import annotations

import copy

import pytest
import torch

from masktron.layers import batch_norm, get_norm
from masktron.layers.batch_norm import NaiveSyncBatchNorm


def _two_processes(bn: NaiveSyncBatchNorm, mine: torch.Tensor, other: torch.Tensor, monkeypatch):
    """`bn(mine)` as one of two processes whose peer's batch is `other`."""
    sent = {}

    def keep(vec):
        sent["vec"] = vec.detach()
        return vec

    monkeypatch.setattr(batch_norm, "_world_size", lambda: 2)
    monkeypatch.setattr(batch_norm, "_all_reduce", keep)
    copy.deepcopy(bn)(other)  # what the peer puts into the all-reduce
    monkeypatch.setattr(batch_norm, "_all_reduce", lambda vec: vec + sent["vec"])
    return bn(mine)


def _expected(x_all: torch.Tensor, n_mine: int, momentum: float = 0.1):
    """Output rows of this process and the running statistics, from the joint batch."""
    mean = x_all.mean(dim=[0, 2, 3])
    var = x_all.var(dim=[0, 2, 3], unbiased=False)  # Detectron2 keeps the biased variance
    out = (x_all - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
    return out[:n_mine], momentum * mean, (1 - momentum) + momentum * var


@pytest.mark.parametrize("mode, sizes", [("", (2, 2)), ("N", (3, 1)), ("N", (0, 2))])
def test_statistics_are_the_joint_batch(mode, sizes, monkeypatch):
    g = torch.Generator().manual_seed(0)
    mine = torch.randn(sizes[0], 4, 5, 6, generator=g) * 3 + 1
    other = torch.randn(sizes[1], 4, 5, 6, generator=g) * 2 - 1
    bn = NaiveSyncBatchNorm(4, stats_mode=mode).train()
    mine.requires_grad_(True)
    out = _two_processes(bn, mine, other, monkeypatch)
    expected, running_mean, running_var = _expected(torch.cat([mine.detach(), other]), sizes[0])
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.running_mean, running_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, running_var, rtol=1e-4, atol=1e-5)
    out.sum().backward()  # an empty batch still gets a (zero) gradient: its peer can reduce
    assert mine.grad is not None and mine.grad.shape == mine.shape


def test_equal_weighting_refuses_an_empty_batch(monkeypatch):
    bn = NaiveSyncBatchNorm(4).train()
    with pytest.raises(ValueError, match="non-empty batch"):
        _two_processes(bn, torch.zeros(0, 4, 2, 2), torch.randn(2, 4, 2, 2), monkeypatch)
    with pytest.raises(ValueError, match="stats_mode"):
        NaiveSyncBatchNorm(4, stats_mode="M")


def test_one_process_and_eval_are_batch_norm():
    x = torch.randn(3, 4, 5, 5)
    reference = torch.nn.BatchNorm2d(4)
    for mode in ("", "N"):
        bn = NaiveSyncBatchNorm(4, stats_mode=mode)
        bn.load_state_dict(reference.state_dict())
        torch.testing.assert_close(bn.train()(x), reference.train()(x))
        torch.testing.assert_close(bn.eval()(x), reference.eval()(x))
    assert get_norm("naiveSyncBN_N", 8)._stats_mode == "N"
    assert get_norm("naiveSyncBN", 8)._stats_mode == ""

"""Saving side: atomic writes, last_checkpoint, resume_or_load, keep-last-N, crash and resume."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest
import torch
from torch import nn

from masktron.checkpoint import Checkpointer, DetectionCheckpointer, PeriodicCheckpointer
from masktron.checkpoint.weights_only import check_weights_only


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[5, 8], gamma=0.1)
    return model, optimizer, scheduler


def _train_step(model, optimizer, scheduler, step: int) -> None:
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    scheduler.step()


def _run(save_dir, start: int, stop: int, max_iter: int, **kw):
    """Train iterations [start, stop), resuming from `save_dir` if it has a checkpoint."""
    model, optimizer, scheduler = _setup(seed=123)  # a different init: resuming must override it
    ckpt = DetectionCheckpointer(model, str(save_dir), optimizer=optimizer, scheduler=scheduler)
    resumed = ckpt.resume_or_load("", resume=True)
    assert resumed.get("iteration", -1) + 1 == start
    kw.setdefault("period", 5)
    periodic = PeriodicCheckpointer(ckpt, max_iter=max_iter, **kw)
    for it in range(start, stop):
        _train_step(model, optimizer, scheduler, it)
        periodic.step(it)
    return model, optimizer, scheduler


def test_save_writes_weights_only_loadable_file_and_tag(tmp_path):
    model, optimizer, scheduler = _setup()
    _train_step(model, optimizer, scheduler, 0)
    ckpt = Checkpointer(model, str(tmp_path / "out"), optimizer=optimizer, scheduler=scheduler)
    assert not ckpt.has_checkpoint() and ckpt.get_checkpoint_file() == ""
    path = ckpt.save("model_0000000", iteration=0, note="first")
    assert path == str(tmp_path / "out" / "model_0000000.pth")
    data = torch.load(path, weights_only=True)
    assert set(data) == {"model", "optimizer", "scheduler", "iteration", "note"}
    assert ckpt.has_checkpoint() and ckpt.get_checkpoint_file() == path
    assert (tmp_path / "out" / "last_checkpoint").read_text() == "model_0000000.pth"
    assert ckpt.get_all_checkpoint_files() == [path]
    assert [f for f in os.listdir(tmp_path / "out") if f.endswith(".tmp")] == []


def test_save_refuses_what_weights_only_would_refuse(tmp_path):
    ckpt = Checkpointer(nn.Linear(1, 1), str(tmp_path))
    with pytest.raises(TypeError, match=r"checkpoint\['hook'\]"):
        ckpt.save("model_final", hook=lambda: None)
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    model = nn.Linear(3, 3)
    ckpt = Checkpointer(model, str(tmp_path))
    path = ckpt.save("model_final", iteration=1)
    before = open(path, "rb").read()
    real_save = torch.save

    def crash_after_partial_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(17)  # half a file, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_after_partial_write)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save("model_final", iteration=2)
    assert open(path, "rb").read() == before
    assert torch.load(path, weights_only=True)["iteration"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]


def test_resume_or_load(tmp_path):
    model, optimizer, scheduler = _setup()
    for step in range(3):
        _train_step(model, optimizer, scheduler, step)
    ckpt = Checkpointer(model, str(tmp_path), optimizer=optimizer, scheduler=scheduler)
    ckpt.save("model_0000001", iteration=1)
    ckpt.save("model_0000002", iteration=2)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    new_model, new_opt, new_sched = _setup(seed=5)
    new = Checkpointer(new_model, str(tmp_path), optimizer=new_opt, scheduler=new_sched)
    assert new.resume_or_load("ignored.pth", resume=True)["iteration"] == 2  # the last one
    for k, v in new_model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert new_sched.last_epoch == 3
    momentum = [s["momentum_buffer"] for s in new_opt.state_dict()["state"].values()]
    expected = [s["momentum_buffer"] for s in optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, expected, strict=True))

    # resume=False: only the weights of the given file; optimizer and scheduler untouched
    other_model, other_opt, other_sched = _setup(seed=6)
    other = Checkpointer(other_model, str(tmp_path), optimizer=other_opt, scheduler=other_sched)
    extra = other.resume_or_load(str(tmp_path / "model_0000001.pth"), resume=False)
    assert extra["iteration"] == 1 and "optimizer" in extra
    assert other_opt.state_dict()["state"] == {} and other_sched.last_epoch == 0


def test_resume_with_dangling_tag_is_a_clear_error(tmp_path):
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")
    with pytest.raises(FileNotFoundError, match="model_0000099.pth"):
        Checkpointer(nn.Linear(1, 1), str(tmp_path)).resume_or_load("", resume=True)


def test_crash_and_resume_matches_uninterrupted_training(tmp_path):
    full, _, _ = _run(tmp_path / "a", 0, 12, max_iter=12)
    _run(tmp_path / "b", 0, 8, max_iter=12)  # "crashes" after iteration 7; last save at 4
    resumed, _, sched = _run(tmp_path / "b", 5, 12, max_iter=12)
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)
    assert sched.last_epoch == 12
    names = sorted(os.listdir(tmp_path / "b"))
    assert names == ["last_checkpoint", "model_0000004.pth", "model_0000009.pth", "model_final.pth"]


def test_keep_last_n_also_across_a_resumed_run(tmp_path):
    _run(tmp_path, 0, 4, max_iter=10, period=1, max_to_keep=2)
    assert sorted(os.listdir(tmp_path)) == [
        "last_checkpoint",
        "model_0000002.pth",
        "model_0000003.pth",
    ]
    _run(tmp_path, 4, 10, max_iter=10, period=1, max_to_keep=2)
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth"))
    assert files == ["model_0000008.pth", "model_0000009.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_no_saving_without_dir_or_when_disabled(tmp_path):
    assert Checkpointer(nn.Linear(1, 1), "").save("model_final") is None
    assert Checkpointer(nn.Linear(1, 1), str(tmp_path), save_to_disk=False).save("x") is None
    assert os.listdir(tmp_path) == []


def test_wrapped_model_saves_and_loads_the_inner_module(tmp_path):
    inner = nn.Linear(2, 2)
    path = Checkpointer(nn.DataParallel(inner), str(tmp_path)).save("model_final")
    assert set(torch.load(path, weights_only=True)["model"]) == {"weight", "bias"}
    target = nn.Linear(2, 2)
    DetectionCheckpointer(nn.DataParallel(target)).load(path)
    assert torch.equal(target.weight, inner.weight)


class _Plain:
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"c": collections.Counter({1: 2})},
        {1, 2},
        frozenset([1]),
        1 + 2j,
        bytearray(b"x"),
        np.float64(1.0),
        _Plain(),
        torch.Size([2, 3]),
        [torch.float16, torch.device("cpu")],
        (None, True, b"x"),
    ],
    ids=repr,
)
def test_save_time_check_agrees_with_torch_load(tmp_path, value):
    path = tmp_path / "x.pth"
    torch.save({"v": value}, path)
    try:
        torch.load(path, weights_only=True)
        loadable = True
    except Exception:
        loadable = False
    try:
        check_weights_only({"v": value})
        accepted = True
    except TypeError:
        accepted = False
    assert accepted == loadable


def test_ddp_model_saves_and_loads_the_inner_module(tmp_path):
    import torch.distributed as dist

    init = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
    try:
        inner = nn.Linear(2, 2)
        ckpt = DetectionCheckpointer(nn.parallel.DistributedDataParallel(inner), str(tmp_path))
        assert ckpt.save_to_disk  # rank 0 saves by default
        path = ckpt.save("model_final")
        assert set(torch.load(path, weights_only=True)["model"]) == {"weight", "bias"}
        target = nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
        DetectionCheckpointer(target).load(path)
        assert torch.equal(target.module.weight, inner.weight)
    finally:
        dist.destroy_process_group()

"""Distributed launching through torchrun's machinery, and the process-group helpers."""

import pytest
import torch
from engine_helpers import BALLOON, distributed_train_worker, small_balloon_set

from masktron.engine import comm
from masktron.engine.launch import launch, parse_dist_url, torchrun_arguments


def test_single_process_helpers():
    assert comm.get_rank() == 0 and comm.get_world_size() == 1 and comm.is_main_process()
    assert comm.all_gather({"a": 1}) == [{"a": 1}] and comm.gather(3) == [3]
    assert comm.broadcast_object("x") == "x"
    comm.synchronize()
    assert 0 <= comm.shared_random_seed() < 2**31


def test_arguments_map_onto_torchrun_options():
    from torch.distributed import run as torchrun

    assert torchrun_arguments(2) == [
        "--nproc-per-node=2",
        "--nnodes=1",
        "--max-restarts=0",
        "--standalone",
    ]
    argv = torchrun_arguments(8, 2, 1, "tcp://10.0.0.1:29500")
    # torchrun's own parser and configuration accept them as a second machine's launch.
    config, _, _ = torchrun.config_from_args(torchrun.parse_args([*argv, "train.py"]))
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (2, 2, 8)
    assert config.rdzv_backend == "static" and config.rdzv_endpoint == "10.0.0.1:29500"
    assert config.rdzv_configs["rank"] == 1 and config.max_restarts == 0


def test_bad_launch_arguments_are_explained(monkeypatch):
    with pytest.raises(ValueError, match="one machine only"):
        torchrun_arguments(2, num_machines=2, machine_rank=0, dist_url="auto")
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        parse_dist_url("10.0.0.1:29500")
    with pytest.raises(ValueError, match="machine-rank 2"):
        torchrun_arguments(2, num_machines=2, machine_rank=2, dist_url="tcp://h:1")
    with pytest.raises(ValueError, match="at least 1"):
        torchrun_arguments(0)
    monkeypatch.setenv("MASTER_ADDR", "node0")
    monkeypatch.setenv("MASTER_PORT", "1234")
    assert parse_dist_url("env://") == ("node0", 1234)


def test_one_process_runs_in_place():
    assert launch(lambda a, b: a + b, 1, args=(2, 3)) == 5
    assert not torch.distributed.is_initialized()


@pytest.mark.slow
def test_two_gloo_processes_train_to_identical_weights(tmp_path):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON}")
    json_file = small_balloon_set(tmp_path / "data")
    out = tmp_path / "out"
    world = launch(distributed_train_worker, 2, args=(str(json_file), str(out), 3))
    assert world == 2
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # DistributedDataParallel: same start (rank 0's), same averaged gradients, same end.
    for name, value in rank0["final"].items():
        assert torch.equal(value, rank1["final"][name]), name
        assert torch.equal(rank0["initial"][name], rank1["initial"][name]), name
    assert any(not torch.equal(rank0["initial"][k], v) for k, v in rank0["final"].items())
    assert (out / "model_final.pth").is_file() and (out / "metrics.json").is_file()


def _rank_and_size(offset):
    return comm.get_rank() + offset, comm.get_world_size()


def test_under_torchrun_launch_joins_the_group_in_place(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launch(_rank_and_size, 4, args=(10,)) == (10, 1)  # --num-gpus 4 is ignored
    assert not torch.distributed.is_initialized()  # the group is torn down afterwards

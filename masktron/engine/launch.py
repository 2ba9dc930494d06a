"""Starting one training function in many processes, through torchrun's own machinery.

`launch(main_func, num_gpus_per_machine, num_machines, machine_rank, dist_url, args)` keeps
Detectron2's signature, but the processes are started by `torch.distributed.run` (torchrun):
its argument parser and `config_from_args` turn our arguments into a `LaunchConfig`, and its
`elastic_launch` agent starts `num_gpus_per_machine` workers on this machine, sets their
`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`, watches
them, and reports a failed worker's traceback. Each worker then joins the process group from
those variables (`init_distributed_from_env`: NCCL on CUDA, gloo on CPU) and calls `main_func`.

When the current process was itself started by torchrun (`torchrun --nproc-per-node 8 -m
masktron train ...`), `launch` starts nothing: it joins the group and runs `main_func` here.
On a machine without CUDA, `num_gpus_per_machine=N` starts N CPU processes (gloo).
"""

from __future__ import annotations

import datetime
import logging
import os
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from masktron.engine import comm

__all__ = [
    "DEFAULT_TIMEOUT",
    "init_distributed_from_env",
    "launch",
    "launched_by_torchrun",
    "parse_dist_url",
    "torchrun_arguments",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process is a worker that torchrun (or an equivalent launcher) started."""
    return all(name in os.environ for name in _TORCHRUN_ENV)


def parse_dist_url(dist_url: str) -> tuple[str, int]:
    """`tcp://HOST:PORT` -> (HOST, PORT); `env://` reads `MASTER_ADDR` and `MASTER_PORT`.

    Raises:
        ValueError: the URL is not of those forms (the message shows the expected form).
    """
    if dist_url == "env://":
        try:
            return os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        except (KeyError, ValueError):
            raise ValueError(
                "--dist-url env:// needs the MASTER_ADDR and MASTER_PORT environment variables"
            ) from None
    parsed = urllib.parse.urlparse(dist_url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise ValueError(
            f"--dist-url {dist_url!r} is not of the form tcp://HOST:PORT (the address of the "
            "machine of rank 0, reachable from every machine), env:// or auto"
        )
    return parsed.hostname, port


def torchrun_arguments(
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
) -> list[str]:
    """The `torchrun` options equivalent to Detectron2's launch arguments.

    One machine with `dist_url` None or "auto" uses torchrun's `--standalone` rendezvous (a free
    local port); otherwise a static rendezvous at the `dist_url` address, with this machine's
    `--node-rank`.
    """
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(
            f"--num-gpus ({num_gpus_per_machine}) and --num-machines ({num_machines}) "
            "must be at least 1"
        )
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"--machine-rank {machine_rank} is not in [0, {num_machines})")
    argv = [
        f"--nproc-per-node={num_gpus_per_machine}",
        f"--nnodes={num_machines}",
        "--max-restarts=0",
    ]
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError(
                "--dist-url auto works on one machine only; with --num-machines > 1 give "
                "--dist-url tcp://HOST:PORT with the address of the machine of rank 0"
            )
        return argv + ["--standalone"]
    host, port = parse_dist_url(dist_url)
    return argv + [
        "--rdzv-backend=static",
        f"--master-addr={host}",
        f"--master-port={port}",
        f"--node-rank={machine_rank}",
    ]


def init_distributed_from_env(timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the process group described by torchrun's environment variables.

    NCCL with one GPU per process (`LOCAL_RANK`) when CUDA is available, gloo otherwise.
    """
    if dist.is_initialized():
        return
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "gloo"
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible"
            )
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    logger.info(
        "Process %d of %d (local %d) joined the %s group", dist.get_rank(),
        dist.get_world_size(), local_rank, backend,
    )  # fmt: skip
    comm.synchronize()


def _run_in_group(main_func: Callable[..., Any], args: Sequence[Any], timeout_s: float) -> Any:
    init_distributed_from_env(datetime.timedelta(seconds=timeout_s))
    try:
        return main_func(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _distributed_worker(main_func: Callable[..., Any], args: Sequence[Any], timeout_s: float):
    """The entry point torchrun's agent starts in each worker process."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_run_in_group)(main_func, args, timeout_s)


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: Sequence[Any] = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> Any:
    """Run `main_func(*args)` in `num_machines * num_gpus_per_machine` processes.

    Call it with the same arguments on every machine (only `machine_rank` differs). With one
    process in all, `main_func` runs here, without torch.distributed. `main_func` and `args`
    must be picklable (a module-level function): workers are started with "spawn".

    Args:
        main_func: the training function.
        num_gpus_per_machine: processes per machine (one per GPU; CPU processes without CUDA).
        num_machines: number of machines.
        machine_rank: this machine's rank in [0, num_machines).
        dist_url: "tcp://HOST:PORT" of the machine of rank 0, "env://", or None/"auto" (one
            machine, a free local port).
        args: positional arguments of `main_func`.
        timeout: how long collective operations wait.

    Returns:
        `main_func`'s return value in this process (of local rank 0 when workers were started).

    Raises:
        ValueError: bad arguments (e.g. more GPUs asked for than visible).
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a worker failed; the
            message holds its traceback.
    """
    if launched_by_torchrun() or dist.is_initialized():
        world = int(os.environ.get("WORLD_SIZE", 1))
        requested = num_machines * num_gpus_per_machine
        if requested > 1 and world != requested:
            logger.warning(
                "Started by torchrun with WORLD_SIZE=%d; the requested %d x %d processes are "
                "ignored", world, num_machines, num_gpus_per_machine,
            )  # fmt: skip
        return _run_in_group(main_func, args, timeout.total_seconds())
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine} but this machine has "
            f"{torch.cuda.device_count()} visible GPUs"
        )
    argv = torchrun_arguments(num_gpus_per_machine, num_machines, machine_rank, dist_url)
    if num_machines * num_gpus_per_machine == 1:
        return main_func(*args)
    return _elastic_launch(argv, main_func, args, timeout)


def _elastic_launch(
    argv: list[str], main_func: Callable[..., Any], args: Sequence[Any], timeout: Any
) -> Any:
    from torch.distributed import run as torchrun
    from torch.distributed.launcher.api import elastic_launch

    # torchrun's parser wants a training script; our entry point is a function instead.
    parsed = torchrun.parse_args([*argv, "masktron"])
    if parsed.standalone:  # what torchrun.run() does for --standalone
        parsed.rdzv_backend, parsed.rdzv_endpoint = "c10d", "localhost:0"
        parsed.rdzv_id = str(uuid.uuid4())
    omp_before = os.environ.get("OMP_NUM_THREADS")
    try:
        config, _, _ = torchrun.config_from_args(parsed)
        logger.info("Starting %s", " ".join(["torchrun", *argv]))
        results = elastic_launch(config, entrypoint=_distributed_worker)(
            main_func, tuple(args), timeout.total_seconds()
        )
    finally:
        if omp_before is None:  # torchrun sets it for the workers only; keep ours unchanged
            os.environ.pop("OMP_NUM_THREADS", None)
    return results.get(0) if isinstance(results, dict) else results

"""RoIAlign over many boxes on a CPU, the boxes split across threads.

torchvision's CPU RoIAlign kernel loops over the boxes on one thread (no intra-op parallelism)
and releases the GIL while it runs. `roi_align_split` cuts the boxes of one or several RoIAlign
calls (e.g. the levels of a feature pyramid) into `torch.get_num_threads()` runs of equal cost
(bilinear samples, `box_costs`) and pools them concurrently: the calling thread takes the first
run, a persistent pool of worker threads the others. Each box's output depends only on that
box, so the pieces are equal bit for bit to one call over all boxes
(tests/layers/test_roi_align_parallel.py).

It falls back to one call per input (on the calling thread) where threads would not pay or
could change the result: devices other than the CPU, autograd recording (training), autocast,
tracing, `torch.compile` and `torch.export`, one thread, fewer than `MIN_ROIS_PER_THREAD`
boxes per thread, and modules with forward hooks (which then see the one call they expect).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import nn

# Below this many boxes per thread the hand-off to a worker costs more than it saves
# (a box of a 7x7 or 14x14 RoIAlign on 256 channels takes about 0.1 to 0.4 ms).
MIN_ROIS_PER_THREAD = 32

_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)  # (process id, workers): a forked child makes its own
_pool_lock = threading.Lock()

# One RoIAlign call: the module (an `ROIAlign`: output size, scale, sampling, alignment),
# features (N, C, H, W) and rois (R, 5).
RoIAlignCall = tuple[nn.Module, torch.Tensor, torch.Tensor]


def _workers(count: int) -> ThreadPoolExecutor:
    """The module's persistent pool with `count` worker threads (re-made after a fork, whose
    child inherits the pool object but not its threads, or when the thread count changes)."""
    global _pool, _pool_key
    with _pool_lock:
        key = (os.getpid(), count)
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(count, thread_name_prefix="masktron-roialign")
            _pool_key = key
        return _pool


def _threads_for(calls: Sequence[RoIAlignCall]) -> int:
    """How many threads to split `calls` over; 1 means one plain call each."""
    threads = torch.get_num_threads()
    total = sum(rois.shape[0] for _, _, rois in calls)
    if threads <= 1 or total < 2 * MIN_ROIS_PER_THREAD:
        return 1
    for _, features, rois in calls:
        if type(features) is not torch.Tensor or type(rois) is not torch.Tensor:
            return 1  # fake, functional or other tensor subclasses (tracers, torch.export)
        if features.device.type != "cpu" or rois.device.type != "cpu":
            return 1
        if torch.is_grad_enabled() and (features.requires_grad or rois.requires_grad):
            return 1
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return 1
    if torch.is_autocast_enabled("cpu"):
        return 1
    if any(_hooked(module) for module, _, _ in calls):
        return 1
    return min(threads, total // MIN_ROIS_PER_THREAD)


def _hooked(module: nn.Module) -> bool:
    """Whether calling `module` runs forward hooks (its own or global ones): a hook that
    reads a level's pooled features must see one call with all its boxes, on this thread."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or nn.modules.module._global_forward_hooks
        or nn.modules.module._global_forward_pre_hooks
    )


def box_costs(module: nn.Module, rois: torch.Tensor) -> torch.Tensor:
    """(R,) relative CPU cost of pooling each of `rois` (R, 5) with `module` (an `ROIAlign`):
    its bilinear samples per bin (torchvision's adaptive grid of ceil(side / bins) samples per
    bin side, or `sampling_ratio` squared), plus one for the per-box work."""
    ratio = getattr(module, "sampling_ratio", 0)
    output_size = getattr(module, "output_size", None)
    if ratio > 0 or output_size is None:
        return torch.full((rois.shape[0],), float(max(ratio, 1) ** 2 + 1))
    bins = torch.tensor([output_size[1], output_size[0]], dtype=torch.float32)  # (PW, PH)
    scale = float(getattr(module, "spatial_scale", 1.0))
    sides = (rois[:, 3:5] - rois[:, 1:3]).float() * scale  # (R, 2): w, h
    grid = torch.nan_to_num(torch.ceil(sides / bins), nan=1.0).clamp(1.0, 1e4)
    return grid.prod(dim=1) + 1.0


def _runs(costs: list[torch.Tensor], threads: int) -> list[list[tuple[int, int, int]]]:
    """Cut the boxes of the calls, of per-box `costs`, into `threads` runs of consecutive
    boxes and (almost) equal total cost.

    Returns:
        per thread, its (call index, first box, end box) slices, in call and box order.
    """
    sizes = [len(c) for c in costs]
    cumulative = torch.cat(costs).double().cumsum(0)
    shares = cumulative[-1] * torch.arange(1, threads, dtype=torch.float64) / threads
    cuts = torch.searchsorted(cumulative, shares, side="right").tolist()
    bounds = [0, *cuts, sum(sizes)]
    runs: list[list[tuple[int, int, int]]] = []
    for begin, end in zip(bounds[:-1], bounds[1:]):
        run, offset = [], 0
        for call, size in enumerate(sizes):
            lo, hi = max(begin - offset, 0), min(end - offset, size)
            if lo < hi:
                run.append((call, lo, hi))
            offset += size
        runs.append(run)
    return runs


def _pool_run(
    calls: Sequence[RoIAlignCall], run: list[tuple[int, int, int]], inference: bool
) -> list[torch.Tensor]:
    """Pool one run's slices; `inference` repeats the caller's inference mode on this thread
    (grad and inference modes are per thread)."""
    with torch.inference_mode(inference), torch.no_grad():
        return [calls[c][0](calls[c][1], calls[c][2][lo:hi]) for c, lo, hi in run]


def roi_align_split(calls: Sequence[RoIAlignCall]) -> list[list[torch.Tensor]]:
    """Run each `module(features, rois)` of `calls`, the boxes shared among threads.

    Args:
        calls: (module, features (N, C, H, W), rois (R, 5)) per call; feature maps in
            channels-last layout are best made contiguous first (the kernel copies them once
            per call, so once per thread here).

    Returns:
        per call, consecutive pieces of its (R, C, PH, PW) output, in box order: their
        concatenation equals `module(features, rois)` bit for bit. One piece per call, the
        plain call, where threads are not used (see the module docstring).
    """
    threads = _threads_for(calls)
    if threads == 1:
        return [[module(features, rois)] for module, features, rois in calls]
    runs = _runs([box_costs(module, rois) for module, _, rois in calls], threads)
    inference = torch.is_inference_mode_enabled()
    pool = _workers(threads - 1)
    futures: list[Future[list[torch.Tensor]]] = [
        pool.submit(_pool_run, calls, run, inference) for run in runs[1:]
    ]
    results = [_pool_run(calls, runs[0], inference)] + [f.result() for f in futures]
    pieces: list[list[torch.Tensor]] = [[] for _ in calls]
    for run, outputs in zip(runs, results):
        for (call, _, _), output in zip(run, outputs):
            pieces[call].append(output)
    return pieces

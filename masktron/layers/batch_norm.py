"""Detectron2's `detectron2.layers.batch_norm` import path, and `NaiveSyncBatchNorm`.

`NaiveSyncBatchNorm` is BatchNorm whose training statistics are averaged over all processes
with one all-reduce of the per-process channel means and mean squares. With
`stats_mode="N"` each process is weighted by its batch size, so a process whose batch is
empty (an RoI head that got no foreground box, as happens with large-scale jitter) takes part
without biasing the statistics; this is why Detectron2's new baselines use it in their RoI
heads (`lambda c: NaiveSyncBatchNorm(c, stats_mode="N")`). On one process, or in eval mode, it
is `torch.nn.BatchNorm2d`. As in Detectron2, the running variance is updated with the biased
variance of the synchronised batch.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn

from masktron.layers.frozen_bn import FrozenBatchNorm2d, get_norm

__all__ = ["FrozenBatchNorm2d", "NaiveSyncBatchNorm", "get_norm"]


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes, with gradients flowing back to every process's input."""
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)


class NaiveSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with statistics synchronised across processes (see the module docstring).

    Args:
        *args, **kwargs: `torch.nn.BatchNorm2d`'s.
        stats_mode: "" averages the processes' statistics equally (every batch must be
            non-empty); "N" weights them by batch size (empty batches allowed).
    """

    def __init__(self, *args, stats_mode: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if stats_mode not in ("", "N"):
            raise ValueError(f"NaiveSyncBatchNorm stats_mode must be '' or 'N', got {stats_mode!r}")
        self._stats_mode = stats_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        world = _world_size()
        if world == 1 or not self.training:
            return super().forward(input)
        batch, channels = input.shape[0], input.shape[1]
        half = input.dtype == torch.float16
        x = input.float() if half else input
        mean = x.mean(dim=[0, 2, 3])  # (C,)
        meansqr = (x * x).mean(dim=[0, 2, 3])
        momentum = self.momentum if self.momentum is not None else 0.1
        if self._stats_mode == "":
            if batch == 0:
                raise ValueError('NaiveSyncBatchNorm(stats_mode="") needs a non-empty batch')
            stats = _all_reduce(torch.cat([mean, meansqr])) / world  # (2C,)
            mean, meansqr = torch.split(stats, channels)
            weight: float | torch.Tensor = momentum
        else:
            if batch == 0:
                # zeros, but connected to the input so that backward reaches every process
                stats = torch.zeros(2 * channels + 1, device=x.device, dtype=x.dtype) + x.sum()
            else:
                count = torch.ones(1, device=x.device, dtype=x.dtype)
                stats = torch.cat([mean, meansqr, count]) * batch  # (2C + 1,)
            stats = _all_reduce(stats)
            total = stats[-1].detach()
            weight = total.clamp(max=1) * momentum  # no running-statistics update if all empty
            mean, meansqr, _ = torch.split(stats / total.clamp(min=1), channels)
        var = meansqr - mean * mean
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        running_mean, running_var = self.running_mean, self.running_var
        assert running_mean is not None and running_var is not None  # track_running_stats
        with torch.no_grad():
            running_mean += weight * (mean.detach() - running_mean)
            running_var += weight * (var.detach() - running_var)
        out = x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
        return out.half() if half else out

"""Optimizer, learning-rate schedule and gradient clipping from a config (`cfg.SOLVER`).

Parameter groups follow Detectron2: every trainable parameter gets `SOLVER.BASE_LR` and the
optimizer's `SOLVER.WEIGHT_DECAY`, except that parameters of normalisation layers get
`SOLVER.WEIGHT_DECAY_NORM`, and biases get `BASE_LR * SOLVER.BIAS_LR_FACTOR` and (when set)
`SOLVER.WEIGHT_DECAY_BIAS`; the bias rule wins for a norm layer's bias. Groups with equal
hyper-parameters are merged, so a model has few groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from masktron.layers.frozen_bn import LayerNorm2d
from masktron.solver.lr_scheduler import (
    CosineParamScheduler,
    LRMultiplier,
    MultiStepParamScheduler,
    ParamScheduler,
    StepWithFixedGammaParamScheduler,
    WarmupParamScheduler,
)

__all__ = [
    "NORM_MODULE_TYPES",
    "build_gradient_clipper",
    "build_lr_scheduler",
    "build_optimizer",
    "get_default_optimizer_params",
    "reduce_param_groups",
]

logger = logging.getLogger(__name__)

NORM_MODULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    LayerNorm2d,
)


def get_default_optimizer_params(
    model: nn.Module,
    base_lr: float | None = None,
    weight_decay: float | None = None,
    weight_decay_norm: float | None = None,
    bias_lr_factor: float | None = 1.0,
    weight_decay_bias: float | None = None,
    overrides: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups for `torch.optim` with Detectron2's per-parameter rules.

    Args:
        model: its trainable parameters, each counted once (shared ones too).
        base_lr, weight_decay: set in every group when given (else the optimizer's defaults).
        weight_decay_norm: weight decay of normalisation layers' parameters.
        bias_lr_factor: lr of parameters named "bias" is `base_lr * bias_lr_factor`.
        weight_decay_bias: weight decay of parameters named "bias".
        overrides: hyper-parameters by parameter name (the last part of the dotted name),
            e.g. `{"pos_embed": {"weight_decay": 0.0}}`.

    Returns:
        Groups `{"params": [...], "lr": ..., "weight_decay": ...}`, equal ones merged.
    """
    overrides = dict(overrides or {})
    defaults: dict[str, float] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias: dict[str, float] = {}
    if bias_lr_factor is not None and bias_lr_factor != 1.0:
        if base_lr is None:
            raise ValueError("bias_lr_factor needs base_lr")
        bias["lr"] = base_lr * bias_lr_factor
    if weight_decay_bias is not None:
        bias["weight_decay"] = weight_decay_bias
    if bias:
        if "bias" in overrides:
            raise ValueError("overrides for 'bias' conflict with bias_lr_factor/weight_decay_bias")
        overrides["bias"] = bias

    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            hyper = dict(defaults)
            if isinstance(module, NORM_MODULE_TYPES) and weight_decay_norm is not None:
                hyper["weight_decay"] = weight_decay_norm
            hyper.update(overrides.get(name, {}))
            groups.append({"params": [param], **hyper})
    return reduce_param_groups(groups)


def _expand_param_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One group per parameter (in first-seen order), with the hyper-parameters of every group
    that lists it, later groups winning."""
    per_param: dict[int, tuple[Any, dict[str, Any]]] = {}
    for group in groups:
        hyper = {k: v for k, v in group.items() if k != "params"}
        for p in group["params"]:
            old = per_param.get(id(p), (p, {}))[1]
            per_param[id(p)] = (p, {**old, **hyper})
    return [{"params": [p], **hyper} for p, hyper in per_param.values()]


def reduce_param_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge groups with identical hyper-parameters (fewer groups, faster foreach kernels).

    A parameter listed in several groups takes the hyper-parameters of the last one.
    """
    merged: dict[tuple, list[Any]] = {}
    for group in _expand_param_groups(groups):
        hyper = tuple(sorted((k, v) for k, v in group.items() if k != "params"))
        merged.setdefault(hyper, []).extend(group["params"])
    return [{**dict(key), "params": params} for key, params in merged.items()]


def build_optimizer(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
    """`SOLVER.OPTIMIZER` ("SGD" with `MOMENTUM`/`NESTEROV`, or "AdamW") over Detectron2's
    parameter groups, with `BASE_LR` and `WEIGHT_DECAY`. Gradient clipping is applied by the
    trainer (`build_gradient_clipper`)."""
    s = cfg.SOLVER
    params = get_default_optimizer_params(
        model,
        base_lr=s.BASE_LR,
        weight_decay_norm=s.WEIGHT_DECAY_NORM,
        bias_lr_factor=s.BIAS_LR_FACTOR,
        weight_decay_bias=s.WEIGHT_DECAY_BIAS,
    )
    if not params:
        raise ValueError("build_optimizer: the model has no trainable parameters")
    name = s.OPTIMIZER.lower()
    if name == "sgd":
        if s.NESTEROV and s.MOMENTUM <= 0:
            raise ValueError("SOLVER.NESTEROV needs SOLVER.MOMENTUM > 0")
        return torch.optim.SGD(
            params,
            lr=s.BASE_LR,
            momentum=s.MOMENTUM,
            nesterov=s.NESTEROV,
            weight_decay=s.WEIGHT_DECAY,
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY)
    raise ValueError(f"SOLVER.OPTIMIZER must be 'SGD' or 'AdamW', got {s.OPTIMIZER!r}")


def build_gradient_clipper(cfg: Any) -> Callable[[Iterable[torch.Tensor]], None] | None:
    """The clipping that `SOLVER.CLIP_GRADIENTS` asks for, or None when disabled.

    CLIP_TYPE "value" clamps every gradient element to [-CLIP_VALUE, CLIP_VALUE]; "norm" scales
    each parameter's gradient to norm (NORM_TYPE) at most CLIP_VALUE, parameter by parameter
    (Detectron2); "full_model" does so for the norm of all gradients together.
    """
    c = cfg.SOLVER.CLIP_GRADIENTS
    if not c.ENABLED:
        return None
    value, norm_type, kind = float(c.CLIP_VALUE), float(c.NORM_TYPE), c.CLIP_TYPE
    if value <= 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be positive, got {value}")

    def clip_value(params: Iterable[torch.Tensor]) -> None:
        for p in params:
            if p.grad is not None:
                torch.nn.utils.clip_grad_value_(p, value)

    def clip_norm(params: Iterable[torch.Tensor]) -> None:
        for p in params:
            if p.grad is not None:
                torch.nn.utils.clip_grad_norm_(p, value, norm_type)

    def clip_full_model(params: Iterable[torch.Tensor]) -> None:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], value, norm_type)

    clippers = {"value": clip_value, "norm": clip_norm, "full_model": clip_full_model}
    if kind not in clippers:
        raise ValueError(
            f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE must be one of {sorted(clippers)}, got {kind!r}"
        )
    return clippers[kind]


def _schedule(cfg: Any) -> ParamScheduler:
    s = cfg.SOLVER
    name = s.LR_SCHEDULER_NAME
    if name == "WarmupMultiStepLR":
        steps = [int(x) for x in s.STEPS if x < s.MAX_ITER]
        if len(steps) != len(s.STEPS):
            logger.warning(
                "SOLVER.STEPS %s has values >= SOLVER.MAX_ITER (%d); they are ignored",
                s.STEPS,
                s.MAX_ITER,
            )
        if steps != sorted(set(steps)) or (steps and steps[0] <= 0):
            raise ValueError(f"SOLVER.STEPS must be increasing positive iterations: {s.STEPS}")
        values = [s.GAMMA**k for k in range(len(steps) + 1)]
        return MultiStepParamScheduler(values, num_updates=s.MAX_ITER, milestones=steps)
    if name == "WarmupCosineLR":
        end = s.BASE_LR_END / s.BASE_LR if s.BASE_LR else 0.0
        if not 0.0 <= end <= 1.0:
            raise ValueError(
                f"SOLVER.BASE_LR_END ({s.BASE_LR_END}) must be in [0, SOLVER.BASE_LR={s.BASE_LR}]"
            )
        return CosineParamScheduler(1.0, end)
    if name == "WarmupStepWithFixedGammaLR":
        return StepWithFixedGammaParamScheduler(1.0, s.NUM_DECAYS, s.GAMMA, s.MAX_ITER)
    raise ValueError(
        f"SOLVER.LR_SCHEDULER_NAME {name!r} is unknown: use WarmupMultiStepLR, WarmupCosineLR "
        "or WarmupStepWithFixedGammaLR"
    )


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> LRMultiplier:
    """Detectron2's schedule for `SOLVER.LR_SCHEDULER_NAME`, stepped once per iteration.

    The multiplier of the base lr at iteration i is `schedule(i / MAX_ITER)` after a warmup of
    `WARMUP_ITERS` iterations (`WARMUP_METHOD` "linear" from `WARMUP_FACTOR`, or "constant"):
    - WarmupMultiStepLR: `GAMMA ** (number of STEPS <= i)`;
    - WarmupCosineLR: half a cosine from 1 to `BASE_LR_END / BASE_LR` at MAX_ITER;
    - WarmupStepWithFixedGammaLR: `GAMMA ** k` over `NUM_DECAYS + 1` equal parts.
    """
    s = cfg.SOLVER
    if s.MAX_ITER <= 0:
        raise ValueError(f"SOLVER.MAX_ITER must be positive, got {s.MAX_ITER}")
    if s.WARMUP_ITERS < 0:
        raise ValueError(f"SOLVER.WARMUP_ITERS must be >= 0, got {s.WARMUP_ITERS}")
    schedule = WarmupParamScheduler(
        _schedule(cfg),
        s.WARMUP_FACTOR,
        min(s.WARMUP_ITERS / s.MAX_ITER, 1.0),
        s.WARMUP_METHOD,
        s.RESCALE_INTERVAL,
    )
    return LRMultiplier(optimizer, multiplier=schedule, max_iter=s.MAX_ITER)

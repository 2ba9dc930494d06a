"""Detectron2's learning-rate schedules, checked against values worked out by hand."""

import math

import pytest
import torch

from masktron.checkpoint.weights_only import check_weights_only
from masktron.config import get_cfg
from masktron.solver import build_lr_scheduler


def solver_cfg(**solver):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.WARMUP_ITERS = 0
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def lrs(cfg, iters=None, groups=1):
    """The learning rate used at each iteration: the value after `i` scheduler steps."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0 * (k + 1)} for k, p in enumerate(params)])
    sched = build_lr_scheduler(cfg, opt)
    out = []
    for _ in range(iters or cfg.SOLVER.MAX_ITER):
        out.append([g["lr"] for g in opt.param_groups] if groups > 1 else opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_with_linear_warmup():
    cfg = solver_cfg(STEPS=[30, 60], GAMMA=0.1, WARMUP_ITERS=10, WARMUP_FACTOR=0.001)
    lr = lrs(cfg)
    assert lr[0] == pytest.approx(0.001)
    # Halfway through warmup: halfway from 0.001 to 1.
    assert lr[5] == pytest.approx(0.001 + (1 - 0.001) * 0.5)
    assert lr[10] == pytest.approx(1.0) and lr[29] == pytest.approx(1.0)
    assert lr[30] == pytest.approx(0.1) and lr[59] == pytest.approx(0.1)
    assert lr[60] == pytest.approx(0.01) and lr[99] == pytest.approx(0.01)


def test_constant_warmup():
    cfg = solver_cfg(STEPS=[50], WARMUP_ITERS=10, WARMUP_FACTOR=0.25, WARMUP_METHOD="constant")
    lr = lrs(cfg)
    assert lr[:10] == pytest.approx([0.25] * 10)
    assert lr[10] == pytest.approx(1.0) and lr[50] == pytest.approx(0.1)


def test_cosine_reaches_base_lr_end_and_warmup_meets_the_curve():
    cfg = solver_cfg(LR_SCHEDULER_NAME="WarmupCosineLR", BASE_LR_END=0.1)
    lr = lrs(cfg, 101)
    cosine = lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / 100))  # noqa: E731
    assert lr[0] == pytest.approx(1.0)
    assert lr[50] == pytest.approx(0.55)
    assert lr[100] == pytest.approx(0.1)
    assert lr[37] == pytest.approx(cosine(37))
    # Linear warmup ends on the cosine's value at the end of the warmup (Detectron2).
    cfg = solver_cfg(LR_SCHEDULER_NAME="WarmupCosineLR", WARMUP_ITERS=10, WARMUP_FACTOR=0.01)
    lr = lrs(cfg)
    end = 0.5 * (1 + math.cos(math.pi * 0.1))
    assert lr[0] == pytest.approx(0.01)
    assert lr[5] == pytest.approx(0.01 + (end - 0.01) * 0.5)
    assert lr[10] == pytest.approx(end)
    assert lr[20] == pytest.approx(0.5 * (1 + math.cos(0.2 * math.pi)))


def test_rescale_interval_starts_the_cosine_after_warmup():
    cfg = solver_cfg(
        LR_SCHEDULER_NAME="WarmupCosineLR", WARMUP_ITERS=10, RESCALE_INTERVAL=True, BASE_LR_END=0.1
    )
    lr = lrs(cfg)
    assert lr[10] == pytest.approx(1.0)
    assert lr[55] == pytest.approx(0.55)  # progress after warmup (55 - 10) / 90 = 0.5


def test_step_with_fixed_gamma_splits_training_equally():
    cfg = solver_cfg(LR_SCHEDULER_NAME="WarmupStepWithFixedGammaLR", NUM_DECAYS=3, GAMMA=0.5)
    lr = lrs(cfg, 101)  # stepping past the last iteration is fine
    assert lr[24] == pytest.approx(1.0) and lr[25] == pytest.approx(0.5)
    assert lr[50] == pytest.approx(0.25) and lr[75] == pytest.approx(0.125)
    assert lr[100] == pytest.approx(0.125)


def test_groups_keep_their_ratio():
    cfg = solver_cfg(STEPS=[5], MAX_ITER=10)
    lr = lrs(cfg, groups=2)
    assert lr[0] == pytest.approx([1.0, 2.0]) and lr[5] == pytest.approx([0.1, 0.2])


def test_steps_past_max_iter_are_ignored_and_bad_names_refused(caplog):
    lr = lrs(solver_cfg(STEPS=[50, 200]))
    assert lr[99] == pytest.approx(0.1)
    assert "ignored" in caplog.text
    with pytest.raises(ValueError, match="LR_SCHEDULER_NAME"):
        lrs(solver_cfg(LR_SCHEDULER_NAME="Nope"))
    with pytest.raises(ValueError, match="STEPS"):
        lrs(solver_cfg(STEPS=[60, 30]))
    with pytest.raises(ValueError, match="BASE_LR_END"):
        lrs(solver_cfg(LR_SCHEDULER_NAME="WarmupCosineLR", BASE_LR_END=2.0))
    with pytest.raises(ValueError, match="WARMUP_METHOD"):
        lrs(solver_cfg(WARMUP_ITERS=5, WARMUP_METHOD="exp"))


def test_state_dict_resumes_the_schedule_and_is_checkpoint_safe():
    cfg = solver_cfg(STEPS=[40], WARMUP_ITERS=10)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_lr_scheduler(cfg, opt)
    for _ in range(37):
        opt.step()
        sched.step()
    state = sched.state_dict()
    check_weights_only(state)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_lr_scheduler(cfg, opt2)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    for _ in range(10):
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)

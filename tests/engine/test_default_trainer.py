"""DefaultTrainer on real data (two balloon photos): outputs, exact resume, validation loss,
evaluation with the best checkpoint."""

import json
import multiprocessing
import os
import signal

import pytest
import torch
from engine_helpers import BALLOON, small_balloon_set, tiny_cfg

import masktron.checkpoint.checkpointer as checkpointer_module
from masktron.checkpoint import load_torch
from masktron.data import DatasetCatalog, register_via_instances
from masktron.engine import DefaultTrainer
from masktron.engine.hooks import CallbackHook

DATASET = "engine_test_balloon2"


@pytest.fixture(scope="module")
def balloon2(tmp_path_factory):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON} (set MASKTRON_SHARED)")
    json_file = small_balloon_set(tmp_path_factory.mktemp("balloon2"))
    if DATASET not in DatasetCatalog:
        register_via_instances(DATASET, {"thing_classes": ["balloon"]}, json_file, json_file.parent)
    return DATASET


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.json").read_text().splitlines()]


def test_training_writes_checkpoints_metrics_and_events(balloon2, tmp_path, single_thread):
    cfg = tiny_cfg(tmp_path, (balloon2,), max_iter=4)
    cfg.SOLVER.CHECKPOINT_PERIOD = 2
    cfg.SOLVER.MAX_TO_KEEP = 1
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model_0000003.pth", "model_final.pth", "last_checkpoint", "metrics.json"} <= names
    assert "model_0000001.pth" not in names  # MAX_TO_KEEP 1
    assert any(n.startswith("events.out.tfevents") for n in names)
    (last,) = read_metrics(tmp_path)
    assert last["iteration"] == 3 and last["lr"] == pytest.approx(0.01)
    assert {"total_loss", "loss_cls", "loss_mask", "loss_rpn_cls", "data_time"} <= set(last)
    ckpt = load_torch(str(tmp_path / "model_final.pth"))
    state = ckpt["trainer"]
    assert ckpt["iteration"] == 3 and state["iteration"] == 3 and state["data_seed"] == 0
    assert state["hooks"]["LRScheduler"]["last_epoch"] == 4
    assert "optimizer" in state["_trainer"] and len(state["rng"]) == 1


@pytest.mark.parametrize("seed", [0, -1])
def test_resume_after_a_crash_matches_an_uninterrupted_run(balloon2, tmp_path, single_thread, seed):
    def run(out, seed, crash_at=None, resume=False):
        cfg = tiny_cfg(out, (balloon2,), max_iter=6)
        cfg.SEED = seed
        cfg.SOLVER.CHECKPOINT_PERIOD = 3
        cfg.SOLVER.WARMUP_ITERS = 2  # the schedule must resume too
        torch.manual_seed(123 if resume else 0)  # a resumed process starts from other states
        trainer = DefaultTrainer(cfg)
        if crash_at is not None:

            def crash(t):
                if t.iter == crash_at:
                    raise RuntimeError("simulated crash")

            trainer.register_hooks([CallbackHook(after_step=crash)])
        trainer.resume_or_load(resume=resume)
        trainer.train()
        return trainer

    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "b", seed, crash_at=4)  # iterations 3 and 4 are lost
    assert (tmp_path / "b" / "last_checkpoint").read_text() == "model_0000002.pth"
    # SEED -1 draws a seed per run; the resumed run must use the one the checkpoint recorded.
    drawn = load_torch(str(tmp_path / "b" / "model_0000002.pth"))["trainer"]["data_seed"]
    assert drawn == seed or seed < 0
    straight = run(tmp_path / "a", drawn)
    resumed = run(tmp_path / "b", seed, resume=True)
    assert resumed.start_iter == 3
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ after resuming: {differ[:5]}"
    # The same losses at the iterations both ran; the crashed run's lines were dropped.
    for name in ("total_loss", "loss_mask", "lr"):
        after_crash = [v for v in straight.storage.history(name).values() if v[1] >= 3]
        assert resumed.storage.history(name).values() == after_crash, name
    assert [r["iteration"] for r in read_metrics(tmp_path / "b")] == [5]


def test_validation_loss_evaluation_and_best_checkpoint(balloon2, tmp_path, single_thread):
    cfg = tiny_cfg(tmp_path, (balloon2,), max_iter=4)
    cfg.DATASETS.VAL = [balloon2]
    cfg.DATASETS.TEST = [balloon2]
    cfg.TEST.EVAL_PERIOD = 2
    cfg.TEST.BEST_METRIC = "-val_loss"
    cfg.TEST.EARLY_STOP.ENABLED = True
    cfg.TEST.EARLY_STOP.PATIENCE = 5
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert set(results) == {"bbox", "segm"} and "AP" in results["segm"]
    lines = read_metrics(tmp_path)
    evaluated = {r["iteration"]: r for r in lines if "val_loss" in r}
    assert sorted(evaluated) == [1, 4]  # every 2 iterations (not the last) and after training
    assert {"segm/AP", "bbox/AP", "val_loss_mask", "val_loss_cls"} <= set(evaluated[4])
    best = load_torch(str(tmp_path / "model_best.pth"))
    assert best["best_metric_name"] == "val_loss"
    assert best["best_metric"] == min(r["val_loss"] for r in evaluated.values())
    assert best["iteration"] in evaluated


def test_amp_and_gradient_clipping_from_the_config(balloon2, tmp_path, single_thread):
    from masktron.engine import AMPTrainer

    cfg = tiny_cfg(tmp_path, (balloon2,), max_iter=2)
    cfg.SOLVER.AMP.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    trainer = DefaultTrainer(cfg)
    assert isinstance(trainer._trainer, AMPTrainer) and trainer._trainer.grad_clipper is not None
    norms = []
    trainer.register_hooks(
        [CallbackHook(after_step=lambda t: norms.append(max(
            p.grad.norm().item() for p in t.model.parameters() if p.grad is not None
        )))]
    )  # fmt: skip
    trainer.train()
    assert all(n <= 1.0 + 1e-4 for n in norms)  # every parameter's gradient norm clipped to 1
    state = load_torch(str(tmp_path / "model_final.pth"))["trainer"]["_trainer"]
    assert "grad_scaler" in state


# ---- kill -9 at any moment, even in the middle of writing a checkpoint, then resume ----


@pytest.fixture(scope="module")
def straight(balloon2, tmp_path_factory):
    """The final weights of an uninterrupted run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(tmp_path_factory.mktemp("straight"), balloon2).model.state_dict()
    finally:
        torch.set_num_threads(threads)


def _train(out, dataset, resume=False, hooks=()):
    cfg = tiny_cfg(out, (dataset,), max_iter=5)
    cfg.SOLVER.CHECKPOINT_PERIOD = 2
    torch.manual_seed(123 if resume else 0)  # a resumed process starts from other states
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks(list(hooks))
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_run(out, dataset, moment):
    """In a forked child: train and SIGKILL itself at `moment`."""
    try:
        torch.set_num_threads(1)
        hooks = []
        if moment == "between-steps":
            hooks = [CallbackHook(after_step=lambda t: t.iter == 2 and _die())]
        else:  # half-way through writing model_0000003.pth (or its last_checkpoint tag)
            real_save = torch.save

            def partial_save(obj, f, *args, **kwargs):
                if moment == "mid-write" and obj.get("iteration") == 3:
                    real_save(obj, f, *args, **kwargs)
                    f.truncate(f.tell() // 2)
                    f.flush()
                    _die()
                real_save(obj, f, *args, **kwargs)

            checkpointer_module.torch.save = partial_save  # type: ignore[assignment]
        _train(out, dataset, hooks=hooks)
    finally:
        os._exit(3)  # not killed: the parent sees exit code 3


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["between-steps", "mid-write"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(
    balloon2, straight, tmp_path, single_thread, moment
):
    out = tmp_path / "b"
    child = multiprocessing.get_context("fork").Process(
        target=_killed_run, args=(out, balloon2, moment)
    )
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    if moment == "mid-write":
        assert leftovers and leftovers[0].startswith(".model_0000003.pth.")
    resumed = _train(out, balloon2, resume=True)
    assert resumed.start_iter == 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    got = resumed.model.state_dict()
    differ = [k for k in straight if not torch.equal(straight[k], got[k])]
    assert not differ, f"weights differ after kill -9 and resume: {differ[:5]}"

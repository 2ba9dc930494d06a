"""Hooks on a toy trainer: best checkpoint, early stopping, eval schedule, checkpoint rotation,
validation loss, learning-rate recording."""

import math
import os

import pytest
import torch
from torch import nn

from masktron.checkpoint import Checkpointer, load_torch
from masktron.engine import SimpleTrainer, hooks
from masktron.engine.rng import preserve_rng_state
from masktron.solver import LRMultiplier, MultiStepParamScheduler


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, batch):
        return {"loss": (self.linear(batch) ** 2).mean()}


def toy_trainer():
    torch.manual_seed(0)
    model = Toy()

    def data():
        while True:
            yield torch.randn(4, 2)

    return SimpleTrainer(model, data(), torch.optim.SGD(model.parameters(), lr=0.01))


def metric_sequence(values, task="segm", name="AP"):
    it = iter(values)
    return lambda: {task: {name: next(it)}}


def test_best_checkpoint_and_early_stopping_on_a_metric_sequence(tmp_path):
    trainer = toy_trainer()
    ckpt = Checkpointer(trainer.model, str(tmp_path), trainer=trainer)
    weights_at = {}
    trainer.register_hooks(
        [
            hooks.PeriodicCheckpointer(ckpt, period=1000),
            hooks.EvalHook(2, metric_sequence([10, 30, 20, 25, 40, 35, 33, 31])),
            hooks.BestCheckpointer(2, ckpt, "segm/AP", mode="max"),
            hooks.EarlyStopping(2, "segm/AP", mode="max", patience=3),
            hooks.CallbackHook(
                after_step=lambda t: weights_at.__setitem__(t.iter, t.model.linear.weight.clone())
            ),
        ]
    )
    trainer.train(0, 100)
    # Evaluations at iterations 1, 3, ..., 15; best 40 at iteration 9; three worse ones after.
    assert trainer.iter == 15 and trainer.stop_requested
    best = load_torch(str(tmp_path / "model_best.pth"))
    assert best["best_metric"] == 40 and best["iteration"] == 9
    assert best["best_metric_name"] == "segm/AP"
    assert torch.equal(best["model"]["linear.weight"], weights_at[9])
    assert best["trainer"]["hooks"]["BestCheckpointer"] == {"best_metric": 40, "best_iter": 9}
    # Stopped early: a final checkpoint of where training stopped.
    final = load_torch(str(tmp_path / "model_final.pth"))
    assert final["iteration"] == 15 and torch.equal(final["model"]["linear.weight"], weights_at[15])
    assert final["trainer"]["hooks"]["EarlyStopping"]["num_bad"] == 3


def test_lower_is_better_metric_skips_nan_and_needs_strict_improvement():
    trainer = toy_trainer()
    stopper = hooks.EarlyStopping(1, "val_loss", mode="min", patience=2)
    seq = iter([5.0, math.nan, 4.0, 4.0, 6.0, 1.0])
    put = hooks.CallbackHook(
        after_step=lambda t: t.storage.put_scalar("val_loss", next(seq), smoothing_hint=False)
    )
    trainer.register_hooks([put, stopper])
    trainer.train(0, 50)
    assert trainer.iter == 4  # 5 best, nan bad, 4 best, 4 bad, 6 bad -> stop
    assert stopper.best_metric == 4.0 and stopper.best_iter == 2
    resumed = hooks.EarlyStopping(1, "val_loss", mode="min", patience=2)
    resumed.load_state_dict(stopper.state_dict())
    assert (resumed.best_metric, resumed.best_iter, resumed.num_bad) == (4.0, 2, 2)


def test_missing_metric_warns_and_saves_nothing(tmp_path, caplog):
    trainer = toy_trainer()
    ckpt = Checkpointer(trainer.model, str(tmp_path), trainer=trainer)
    trainer.register_hooks(
        [hooks.EvalHook(2, metric_sequence([1, 2, 3])), hooks.BestCheckpointer(2, ckpt, "bbox/AP")]
    )
    trainer.train(0, 6)
    assert "'bbox/AP' was not found" in caplog.text and "segm/AP" in caplog.text
    assert not (tmp_path / "model_best.pth").exists()


def test_eval_schedule_results_in_storage_and_generators_untouched():
    trainer = toy_trainer()
    calls = []

    def evaluate():
        calls.append(trainer.iter)
        torch.rand(100)  # evaluation must not shift the training's random stream
        return {"bbox": {"AP": 50.0 + trainer.iter, "AP-balloon": 1.0}, "note": "text"}

    trainer.register_hooks([hooks.EvalHook(5, evaluate)])
    trainer.train(0, 12)
    assert calls == [4, 9, 12]  # every 5 iterations, not at the last, then after training
    assert trainer.storage.latest()["bbox/AP"] == (62.0, 12)
    assert "note" not in trainer.storage.latest()
    state = torch.get_rng_state()
    with preserve_rng_state():
        torch.rand(10)
    assert torch.equal(state, torch.get_rng_state())


def test_periodic_checkpointer_keeps_the_newest_files(tmp_path):
    trainer = toy_trainer()
    ckpt = Checkpointer(trainer.model, str(tmp_path), trainer=trainer)
    trainer.register_hooks([hooks.PeriodicCheckpointer(ckpt, period=2, max_to_keep=2)])
    trainer.train(0, 9)
    assert sorted(os.listdir(tmp_path)) == [
        "last_checkpoint",
        "model_0000005.pth",
        "model_0000007.pth",
        "model_final.pth",
    ]
    saved = load_torch(str(tmp_path / "model_0000007.pth"))
    assert saved["iteration"] == 7 and saved["trainer"]["iteration"] == 7
    assert {"python", "numpy", "torch"} <= set(saved["trainer"]["rng"][0])


def test_lr_scheduler_hook_records_and_steps():
    trainer = toy_trainer()
    sched = LRMultiplier(trainer.optimizer, MultiStepParamScheduler([1, 0.1], 10, [3]), 10)
    trainer.register_hooks([hooks.LRScheduler(trainer.optimizer, sched)])
    trainer.train(0, 5)
    lrs = [v for v, _ in trainer.storage.history("lr").values()]
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001])
    assert trainer.state_dict()["hooks"]["LRScheduler"]["last_epoch"] == 5


class BNToy(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)

    def forward(self, batch):
        out = self.bn(torch.stack([b["x"] for b in batch]))
        return {"loss_a": out.abs().mean() * 0 + batch[0]["a"], "loss_b": torch.tensor(1.0)}


def test_validation_loss_averages_over_images_without_touching_batch_norm():
    trainer = toy_trainer()
    model = BNToy().train()
    loader = [
        [{"x": torch.ones(1) * k, "a": torch.tensor(float(k))} for _ in range(n)]
        for k, n in ((1, 2), (4, 1))
    ]
    trainer.register_hooks([hooks.ValidationLoss(3, model, loader)])
    trainer.train(0, 4)
    # Per image: loss_a 1, 1, 4 -> mean 2; loss_b 1. Measured at iteration 2 and after training.
    assert trainer.storage.history("val_loss_a").values() == [(2.0, 2), (2.0, 4)]
    assert trainer.storage.latest()["val_loss_b"] == (1.0, 4)
    assert trainer.storage.latest()["val_loss"] == (3.0, 4)
    assert model.training and model.bn.training
    assert torch.equal(model.bn.running_mean, torch.zeros(1))


def test_precise_bn_sets_plain_averages_of_batch_statistics():
    trainer = toy_trainer()
    model = BNToy().train()
    model.bn.momentum = 0.3
    batches = [[{"x": torch.tensor([v]), "a": torch.tensor(0.0)} for v in values]
               for values in ((0.0, 2.0), (4.0, 8.0))]  # fmt: skip
    trainer.register_hooks([hooks.PreciseBN(0, model, batches, num_iter=2)])
    trainer.train(0, 3)  # updated once, at the last iteration
    # Batch means 1 and 6; unbiased variances 2 and 8.
    assert model.bn.running_mean.item() == pytest.approx(3.5)
    assert model.bn.running_var.item() == pytest.approx(5.0)
    assert model.bn.momentum == 0.3

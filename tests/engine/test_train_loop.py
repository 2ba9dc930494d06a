"""The plain training loop on a toy regression: steps, hooks, clipping, AMP, bad losses."""

import itertools

import pytest
import torch
from torch import nn

from masktron.engine import AMPTrainer, HookBase, SimpleTrainer
from masktron.engine.hooks import CallbackHook


class Regression(nn.Module):
    """Returns Detectron2-style loss dicts; `scale` lets a test blow the loss up."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.scale = 1.0

    def forward(self, batch):
        x, y = batch
        pred = self.linear(x).squeeze(1)
        return {"loss_a": ((pred - y) ** 2).mean() * self.scale, "loss_b": pred.abs().mean() * 0}


def batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([1.0, -2.0, 0.5])
    while True:
        x = torch.randn(8, 3, generator=g)
        yield x, x @ w + 0.3


class Recorder(HookBase):
    def __init__(self):
        self.calls = []

    def before_train(self):
        self.calls.append("before_train")

    def before_step(self):
        self.calls.append(f"before_step {self.trainer.iter}")

    def after_backward(self):
        grad = self.trainer.model.linear.weight.grad
        self.calls.append(f"after_backward {grad is not None}")

    def after_step(self):
        self.calls.append(f"after_step {self.trainer.iter}")

    def after_train(self):
        self.calls.append(f"after_train {self.trainer.iter}")


def make_trainer(cls=SimpleTrainer, **kwargs):
    torch.manual_seed(0)
    model = Regression()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return cls(model, batches(), opt, **kwargs)


def test_loss_falls_and_hooks_run_in_order():
    trainer = make_trainer()
    recorder = Recorder()
    trainer.register_hooks([recorder, None])
    trainer.train(0, 60)
    hist = trainer.storage.history("loss_a").values()
    assert hist[-1][0] < hist[0][0] / 20
    assert trainer.iter == 60  # a completed run ends at max_iter
    first = ["before_train", "before_step 0", "after_backward True", "after_step 0"]
    assert recorder.calls[:4] == first
    assert recorder.calls[-1] == "after_train 60"
    latest = trainer.storage.latest()
    assert {"total_loss", "loss_a", "loss_b", "data_time"} <= set(latest)
    assert latest["total_loss"][0] == pytest.approx(latest["loss_a"][0] + latest["loss_b"][0])
    assert latest["loss_a"][1] == 59


def test_non_finite_loss_names_the_iteration_and_the_losses():
    trainer = make_trainer()
    blow_up = CallbackHook(
        after_step=lambda t: setattr(t.model, "scale", float("inf")) if t.iter == 2 else None
    )
    trainer.register_hooks([blow_up])
    with pytest.raises(FloatingPointError, match=r"(?s)iteration 3.*loss_a.: inf") as info:
        trainer.train(0, 10)
    assert "process 0" in str(info.value)
    # The bad step did not update the weights: the check runs before backward.
    assert torch.isfinite(trainer.model.linear.weight).all()


def test_request_stop_ends_after_the_current_iteration():
    trainer = make_trainer()
    recorder = Recorder()
    stopper = CallbackHook(after_step=lambda t: t.request_stop("test") if t.iter == 4 else None)
    trainer.register_hooks([stopper, recorder])
    trainer.train(0, 100)
    assert trainer.iter == 4 and trainer.stop_requested
    assert recorder.calls[-2:] == ["after_step 4", "after_train 4"]


def test_gradient_clipper_sees_the_gradients_before_the_step():
    seen = []

    def clipper(params):
        params = list(params)
        seen.append(all(p.grad is not None for p in params))
        for p in params:
            p.grad.zero_()  # a clipper that removes everything: no update

    trainer = make_trainer(grad_clipper=clipper)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train(0, 3)
    assert seen == [True, True, True]
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_amp_trainer_on_cpu_uses_bfloat16_and_saves_its_scaler():
    trainer = make_trainer(AMPTrainer)
    assert trainer.precision == torch.bfloat16 and not trainer.grad_scaler.is_enabled()
    dtypes = []
    trainer.model.linear.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer.train(0, 40)
    assert dtypes[0] == torch.bfloat16
    hist = trainer.storage.history("loss_a").values()
    assert hist[-1][0] < hist[0][0] / 5
    assert "grad_scaler" in trainer.state_dict() and "optimizer" in trainer.state_dict()


def test_loader_is_iterated_lazily_and_can_be_replaced():
    trainer = make_trainer()
    trainer.reset_data_loader(itertools.islice(batches(1), 2))
    trainer.train(0, 2)
    with pytest.raises(StopIteration):
        trainer.train(2, 3)


def test_model_in_eval_mode_is_refused():
    trainer = make_trainer()
    trainer.model.eval()
    with pytest.raises(RuntimeError, match="eval mode"):
        trainer.train(0, 1)

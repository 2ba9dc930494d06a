"""Detectron2's engine behaviours: `with EventStorage()` and `get_event_storage`, the
SimpleTrainer arguments, `reset_data_loader(builder)` and lazy TensorBoard files."""

import itertools

import pytest
import torch
from torch import nn

from masktron.engine import SimpleTrainer
from masktron.utils.events import (
    EventStorage,
    TensorboardXWriter,
    get_event_storage,
    has_event_storage,
)


def test_event_storage_context():
    assert not has_event_storage()
    with pytest.raises(AssertionError):
        get_event_storage()
    with EventStorage(5) as outer:
        assert get_event_storage() is outer and outer.iteration == 5
        with EventStorage() as inner:
            assert get_event_storage() is inner
            with inner.name_scope("val"):
                inner.put_scalar("loss", 1.0)
            assert "val/loss" in inner.latest()
        assert get_event_storage() is outer
    assert not has_event_storage()


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, batch):
        get_event_storage().put_scalar("seen", float(batch))  # Detectron2 models do this
        return {"loss": (self.w * batch).sum()}


def test_simple_trainer_arguments():
    model = _Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = SimpleTrainer(
        model,
        itertools.repeat(torch.tensor(1.0)),
        optimizer,
        gather_metric_period=2,
        async_write_metrics=True,
        zero_grad_before_forward=True,
    )
    trainer.train(0, 4)
    history = trainer.storage.history("loss").values()
    assert [itr for _, itr in history] == [1, 3]  # every 2nd iteration, at its own iteration
    assert len(trainer.storage.history("seen").values()) == 4
    trainer.reset_data_loader(lambda: itertools.repeat(torch.tensor(2.0)))
    trainer.train(4, 5)
    assert model.w.item() == pytest.approx(1 - 0.1 * 4 - 0.2)


def test_nan_loss_raises_with_async_metrics():
    model = _Model()
    trainer = SimpleTrainer(
        model,
        itertools.repeat(torch.tensor(float("nan"))),
        torch.optim.SGD(model.parameters(), lr=0.1),
        async_write_metrics=True,
    )
    with pytest.raises(FloatingPointError):
        trainer.train(0, 3)


def test_tensorboard_file_appears_on_first_write(tmp_path):
    pytest.importorskip("tensorboard")
    writer = TensorboardXWriter(str(tmp_path / "tb"))
    writer.close()
    assert not (tmp_path / "tb").exists()
    writer = TensorboardXWriter(str(tmp_path / "tb"))
    with EventStorage() as storage:
        storage.put_scalar("x", 1.0)
        writer.write(storage)
    writer.close()
    assert any(p.name.startswith("events.out") for p in (tmp_path / "tb").iterdir())

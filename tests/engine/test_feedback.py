"""Training feedback (issue 17): a bar that moves every iteration, no bar when stderr is not a
terminal, the evaluation an interruption cut short run on resume, curves, tracker writers."""

from __future__ import annotations

import json
import sys
import types

import pytest
from PIL import Image

from masktron.engine.curves import plot_metrics
from masktron.engine.events import CommonMetricPrinter, EventStorage
from masktron.engine.hooks import EvalHook


def _step(storage, i):
    storage.iter = i
    storage.put_scalars(total_loss=10.0 - i, time=0.5)
    storage.put_scalar("lr", 0.01, smoothing_hint=False)


def test_bar_moves_every_iteration_with_loss():
    printer = CommonMetricPrinter(max_iter=40, progress=True)
    printer.on_train_start(0)
    storage = EventStorage()
    for i in range(9):  # before the first periodic write (20 by default)
        _step(storage, i)
        printer.on_step(storage)
    assert printer._bar.n == 9 and "loss=" in str(printer._bar)
    printer.close()


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False))
    printer = CommonMetricPrinter(max_iter=40)
    printer.on_train_start(0)
    storage = EventStorage()
    _step(storage, 0)
    printer.on_step(storage)
    assert printer._bar is None  # only the log lines report progress


class _Trainer:
    def __init__(self, start_iter, max_iter=100):
        self.start_iter, self.iter, self.max_iter = start_iter, start_iter, max_iter
        self.storage = EventStorage(start_iter)


@pytest.mark.parametrize(("last_eval", "start", "runs"), [(9, 20, 1), (19, 20, 0), (9, 15, 0)])
def test_eval_cut_short_runs_again_on_resume(last_eval, start, runs):
    calls = []
    hook = EvalHook(10, lambda: calls.append(1) or {"segm": {"AP": 1.0}})
    hook.load_state_dict({"last_eval_iter": last_eval})
    hook.trainer = _Trainer(start)
    hook.before_train()
    assert len(calls) == runs
    if runs:
        assert hook.state_dict() == {"last_eval_iter": start}
        assert hook.trainer.storage.latest()["segm/AP"][0] == 1.0


def test_curves_png_has_a_loss_and_an_ap_panel(tmp_path):
    lines = [{"iteration": i, "total_loss": 2.0 / (i + 1), "lr": 0.01} for i in range(5)]
    lines.append({"iteration": 4, "segm/AP": 12.5, "bbox/AP": 20.0})
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken")
    assert plot_metrics(metrics, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as im:
        assert im.size == (640, 600) and len(im.convert("RGB").getcolors(10_000)) > 3
    (tmp_path / "empty.json").write_text("")
    assert not plot_metrics(tmp_path / "empty.json", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_tracker_writers_are_imported_only_when_named(monkeypatch, tmp_path):
    from masktron.engine.tracking import build_tracking_writer

    logged = []
    run = types.SimpleNamespace(log=lambda d, step: logged.append((step, d)), finish=lambda: None)
    fake_wandb = types.SimpleNamespace(init=lambda **kw: run)
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb)
    writer = build_tracking_writer("wandb", str(tmp_path / "run1"), {"SOLVER": {"BASE_LR": 0.1}})
    storage = EventStorage()
    _step(storage, 0)
    _step(storage, 1)
    writer.write(storage)
    writer.write(storage)  # nothing new: nothing sent twice
    assert [s for s, _ in logged] == [1] and logged[0][1]["lr"] == 0.01
    writer.close()
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    with pytest.raises(ImportError, match=r"masktron\[mlflow\]"):
        build_tracking_writer("mlflow", str(tmp_path), {})
    with pytest.raises(ValueError, match="unknown writer"):
        build_tracking_writer("comet", str(tmp_path), {})

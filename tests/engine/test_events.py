"""EventStorage and the writers: metrics.json lines, TensorBoard event files, console lines."""

import json
import logging

import pytest

from masktron.engine.events import (
    CommonMetricPrinter,
    EventStorage,
    HistoryBuffer,
    JSONWriter,
    TensorboardXWriter,
)


def fill(storage, start, stop):
    for i in range(start, stop):
        storage.iter = i
        storage.put_scalars(total_loss=100.0 - i, loss_cls=float(i % 3), data_time=0.01, time=0.5)
        storage.put_scalar("lr", 0.1 * i, smoothing_hint=False)


def test_history_buffer_statistics():
    h = HistoryBuffer(max_length=3)
    for i, v in enumerate([4.0, 1.0, 3.0, 2.0]):
        h.update(v, i)
    assert h.latest() == 2.0
    assert h.values() == [(1.0, 1.0), (3.0, 2.0), (2.0, 3.0)]
    assert h.median(3) == 2.0 and h.avg(2) == 2.5
    assert h.global_avg() == pytest.approx(2.5)  # dropped values still count


def test_storage_latest_and_smoothing():
    s = EventStorage(start_iter=5)
    fill(s, 5, 10)
    assert s.latest()["total_loss"] == (91.0, 9)
    smoothed = s.latest_with_smoothing_hint(window_size=3)
    assert smoothed["total_loss"] == (92.0, 9)  # median of 93, 92, 91
    assert smoothed["lr"][0] == pytest.approx(0.9)  # not smoothed
    with pytest.raises(ValueError, match="smoothing_hint"):
        s.put_scalar("lr", 1.0)
    with pytest.raises(KeyError, match="total_loss"):
        s.history("nope")


def test_json_writer_writes_one_line_per_new_iteration_and_truncates_on_resume(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    s = EventStorage()
    writer = JSONWriter(str(path), window_size=1)
    fill(s, 0, 3)
    writer.write(s)
    writer.write(s)  # nothing new: no line
    fill(s, 3, 5)
    s.put_scalar("segm/AP", 12.5, smoothing_hint=False)
    writer.write(s)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [2, 4]
    assert lines[1] == {
        "iteration": 4,
        "total_loss": 96.0,
        "loss_cls": 1.0,
        "data_time": 0.01,
        "time": 0.5,
        "lr": pytest.approx(0.4),
        "segm/AP": 12.5,
    }
    # A run resumed at iteration 3 drops what the interrupted run logged from there on.
    with open(path, "a") as f:
        f.write('{"iteration": 9, "tot')  # a line cut short by a crash
    resumed = JSONWriter(str(path))
    resumed.on_train_start(3)
    assert [json.loads(x)["iteration"] for x in path.read_text().splitlines()] == [2]


def test_tensorboard_writer_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    s = EventStorage()
    writer = TensorboardXWriter(str(tmp_path), window_size=1)
    assert writer.enabled
    fill(s, 0, 2)
    writer.write(s)
    fill(s, 2, 4)
    writer.write(s)
    writer.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("total_loss")] == [(1, 99.0), (3, 97.0)]
    assert "lr" in events.Tags()["scalars"]


def test_tensorboard_writer_without_tensorboard_warns(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "torch.utils.tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    writer = TensorboardXWriter(str(tmp_path))
    assert not writer.enabled and "tensorboard is not installed" in caplog.text
    s = EventStorage()
    fill(s, 0, 1)
    writer.write(s)
    writer.close()
    assert not list(tmp_path.iterdir())


def test_console_printer_logs_eta_losses_and_lr(caplog):
    s = EventStorage()
    fill(s, 0, 20)
    printer = CommonMetricPrinter(max_iter=100, window_size=5, progress=False)
    with caplog.at_level(logging.INFO, logger="masktron.utils.events"):
        printer.write(s)
    line = caplog.records[-1].getMessage()
    # 80 iterations left at 0.5 s each.
    assert "eta: 0:00:40" in line and "iter: 19" in line
    assert "total_loss: 83" in line and "loss_cls: 1" in line and "lr: 1.9" in line
    printer.close()

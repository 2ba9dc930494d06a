"""`masktron train`: help, argument errors, and a real (tiny) run writing OUTPUT_DIR."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from masktron.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import BALLOON, masktron_logging_kept, small_balloon_set, tiny_cfg  # noqa: E402


@pytest.fixture
def restore_logging_and_threads():
    """`masktron train` configures the "masktron" logger; give other tests theirs back. One
    thread: the tiny model trains fastest so."""
    with masktron_logging_kept(threads=1):
        yield


def test_help_lists_the_training_options(capsys):
    # In this process (a fresh interpreter only re-imports torch): `python -m masktron train`
    # itself is run by test_two_processes_from_the_command_line.
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--config", "--resume", "--eval-only", "--num-gpus", "--num-machines",
                   "--machine-rank", "--dist-url", "--coco-dataset", "KEY VALUE"):  # fmt: skip
        assert option in out, option


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", "x.yaml", "--num-gpus", "two"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["train", "SOLVER.BASE_LR", "0.1"])  # no --config
    assert e.value.code == 2
    assert "--config is required" in capsys.readouterr().err


def test_missing_config_exits_1_with_a_clear_message(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "neither a file nor a model-zoo name" in err
    assert "Traceback" not in err


def test_unknown_dataset_and_bad_override_exit_1(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(tiny_cfg(tmp_path / "out").dump())
    assert main(["train", "--config", str(config), "DATASETS.TRAIN", "('nowhere',)"]) == 1
    assert "'nowhere', which is not registered" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "SOLVER.BASE_LRR", "0.1"]) == 1
    assert "did you mean SOLVER.BASE_LR" in capsys.readouterr().err


@pytest.mark.slow
def test_train_resume_and_eval_only_write_output_dir(tmp_path, restore_logging_and_threads):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON}")
    json_file = small_balloon_set(tmp_path / "data")
    out = tmp_path / "out"
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_cfg(out).dump())
    data = ["--via-dataset", "cli_balloon2", str(json_file), str(json_file.parent)]
    overrides = ["DATASETS.TRAIN", "('cli_balloon2',)", "SOLVER.MAX_ITER", "3"]
    overrides += ["SOLVER.CHECKPOINT_PERIOD", "2", "SEED", "-1"]
    assert main(["train", "--config", str(config), *data, *overrides]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "log.txt", "metrics.json", "last_checkpoint"} <= names
    assert {"model_0000001.pth", "model_final.pth"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    used = (out / "config.yaml").read_text()
    assert "MAX_ITER: 3" in used and "SEED: -1" not in used  # the seed drawn is recorded
    lines = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines()]
    assert lines[-1]["iteration"] == 2 and "total_loss" in lines[-1]
    # Resuming a finished run trains no more and keeps metrics.json as it was. The dataset
    # options are remembered in OUTPUT_DIR: a new process need not repeat them.
    spec = json.loads((out / "datasets.json").read_text())[0]
    assert (spec["format"], spec["name"]) == ("via", "cli_balloon2")
    from masktron.data.run_datasets import forget_registered

    forget_registered("cli_balloon2")
    metrics = (out / "metrics.json").read_text()
    assert main(["train", "--config", str(config), "--resume", *overrides]) == 0
    assert (out / "metrics.json").read_text() == metrics
    assert "Starting training from iteration 3" in (out / "log.txt").read_text()
    # Evaluation only: COCO AP of the last checkpoint on the test set.
    test = ["DATASETS.TEST", "('cli_balloon2',)"]
    assert main(["train", "--config", str(config), "--eval-only", "--resume", *data,
                 *overrides, *test]) == 0  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == {"bbox", "segm"} and "AP" in results["segm"]


@pytest.mark.slow
def test_two_processes_from_the_command_line(tmp_path):
    if not BALLOON.is_dir():
        pytest.skip(f"shared data not found at {BALLOON}")
    json_file = small_balloon_set(tmp_path / "data")
    out = tmp_path / "out"
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_cfg(out).dump())
    command = [sys.executable, "-m", "masktron", "train", "--config", str(config)]
    command += ["--num-gpus", "2", "--via-dataset", "b2", str(json_file), str(json_file.parent)]
    command += ["DATASETS.TRAIN", "('b2',)", "SOLVER.MAX_ITER", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "World size: 2" in (out / "log.txt").read_text()
    assert (out / "log.txt.rank1").is_file() and (out / "model_final.pth").is_file()

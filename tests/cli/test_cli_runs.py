"""From your data to a model you can use (issue 17): one tiny `masktron train` run on a COCO
file with category id 7, then predict/eval from its folder alone, in a fresh registry."""

import contextlib
import io
import json
import signal
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from masktron.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import (  # noqa: E402
    BALLOON,
    masktron_logging_kept,
    small_balloon_set,
    tiny_cfg,
)

pytestmark = pytest.mark.skipif(not BALLOON.is_dir(), reason=f"shared data not at {BALLOON}")
CAT_ID = 7  # not 1: the run must carry the dataset's ids, not assume 1..K


def _coco_from_via(via_json: Path) -> Path:
    """The small balloon set as a COCO file: image ids 11, 12 and category 'balloon' = 7."""
    entries = json.loads(via_json.read_text())
    images, annotations = [], []
    for k, entry in enumerate(entries.values()):
        with Image.open(via_json.parent / entry["filename"]) as im:
            width, height = im.size
        images.append({"id": 11 + k, "file_name": entry["filename"], "height": height,
                       "width": width})  # fmt: skip
        regions = entry["regions"]
        for region in regions.values() if isinstance(regions, dict) else regions:
            xs = region["shape_attributes"]["all_points_x"]
            ys = region["shape_attributes"]["all_points_y"]
            x0, y0 = min(xs), min(ys)
            annotations.append({
                "id": len(annotations) + 1, "image_id": 11 + k, "category_id": CAT_ID,
                "segmentation": [[c for xy in zip(xs, ys) for c in xy]], "iscrowd": 0,
                "bbox": [x0, y0, max(xs) - x0, max(ys) - y0],
                "area": (max(xs) - x0) * (max(ys) - y0),
            })  # fmt: skip
    path = via_json.parent / "coco.json"
    categories = [{"id": CAT_ID, "name": "balloon"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def quiet_single_thread():
    """Runs configure the "masktron" logger: give it back. One thread: fastest for tiny models."""
    with masktron_logging_kept(threads=1):
        yield


def _forget(*names):
    """What a new process sees: none of the datasets the run registered."""
    from masktron.data.run_datasets import forget_registered

    for name in names:
        forget_registered(name)


def _with_a_sigterm(build_hooks):
    """DefaultTrainer.build_hooks plus a hook that sends SIGTERM during iteration 1 of a run
    that started at 0 (as a scheduler would)."""

    def kill(trainer):
        if trainer.iter == 1 and trainer.start_iter == 0:
            signal.raise_signal(signal.SIGTERM)

    def wrapped(self):
        from masktron.engine import hooks

        return [hooks.CallbackHook(after_step=kill), *build_hooks(self)]

    return wrapped


@pytest.fixture(scope="module")
def run(tmp_path_factory, quiet_single_thread):
    """A 3-iteration run on COCO data with category id 7, LOG_PERIOD 1, 64 workers asked, a
    CUDA device that is not there and evaluation; SIGTERM arrives in iteration 1 and a second
    process (a fresh registry) resumes from the run folder's config.yaml."""
    from masktron.engine.defaults import DefaultTrainer

    root = tmp_path_factory.mktemp("runs")
    coco = _coco_from_via(small_balloon_set(root / "data"))
    out = root / "out"
    config = root / "tiny.yaml"
    config.write_text(tiny_cfg(out).dump())
    argv = ["train", "--config", str(config), "--coco-dataset", "bal_tr", str(coco),
            str(coco.parent), "DATASETS.TRAIN", "('bal_tr',)", "DATASETS.TEST", "('bal_tr',)",
            "SOLVER.MAX_ITER", "3", "LOG_PERIOD", "1", "DATALOADER.NUM_WORKERS", "64",
            "--opts", "MODEL.DEVICE", "cuda"]  # fmt: skip
    handler = signal.getsignal(signal.SIGTERM)
    stderr = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("always")
        mp.setattr(DefaultTrainer, "build_hooks", _with_a_sigterm(DefaultTrainer.build_hooks))
        with contextlib.redirect_stderr(stderr):
            code = main(argv)
        restored = signal.getsignal(signal.SIGTERM) is handler
        mp.undo()
        _forget("bal_tr")
        resumed = main(["train", "--config", str(out / "config.yaml"), "--resume"])
    _forget("bal_tr")
    return {"out": out, "coco": coco, "images": coco.parent, "warnings": caught,
            "codes": (code, resumed), "stderr": stderr.getvalue(),
            "restored": restored}  # fmt: skip


def test_sigterm_saves_a_checkpoint_and_resume_continues(run):
    assert run["codes"] == (143, 0)
    assert "interrupted by SIGTERM" in run["stderr"] and "model_0000001.pth" in run["stderr"]
    assert "continue with --resume" in run["stderr"]
    assert run["restored"]  # the signal handlers are given back
    log = (run["out"] / "log.txt").read_text()
    assert "SIGTERM received: saving a checkpoint" in log
    assert "Starting training from iteration 2" in log  # not from the last periodic one
    assert (run["out"] / "model_final.pth").is_file()


def test_run_folder_carries_datasets_and_classes(run):
    from masktron.cli.run_config import build_config
    from masktron.data.run_datasets import config_metadata

    cfg, _ = build_config(str(run["out"] / "config.yaml"), [])  # registers bal_tr again
    assert cfg.DATASETS.THING_CLASSES == ["balloon"] and cfg.DATASETS.THING_DATASET_IDS == [7]
    assert [s["name"] for s in cfg.DATASETS.REGISTER] == ["bal_tr"]
    meta = config_metadata(cfg)
    assert meta.thing_classes == ["balloon"]
    assert meta.thing_dataset_id_to_contiguous_id == {7: 0}
    _forget("bal_tr")


def test_training_feedback_files_and_quiet_console(run, capsys):
    out = run["out"]
    lines = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines()]
    losses = [x["iteration"] for x in lines if "total_loss" in x]
    assert losses == [0, 1, 2]  # LOG_PERIOD 1: every iteration, not every 20
    assert any("bbox/AP" in x for x in lines)
    log = (out / "log.txt").read_text()
    assert "Model:\n" not in log and "(backbone)" not in log  # only with --verbose
    assert "NUM_WORKERS 64 ->" in log  # capped, one line, and recorded so in config.yaml
    assert "NUM_WORKERS: 64" not in (out / "config.yaml").read_text()
    assert "CUDA is not available; using the CPU" in log  # a log line, not a UserWarning
    messages = [str(w.message) for w in run["warnings"]]
    assert not [m for m in messages if "CUDA" in m or "worker processes" in m], messages
    with Image.open(out / "curves.png") as im:
        assert im.height >= 600  # loss panel and AP panel
    full, weights = out / "model_final.pth", out / "model_final_weights.pth"
    assert weights.stat().st_size < 0.7 * full.stat().st_size  # no optimizer state
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert set(state) == {"model", "__author__"}


def test_predict_and_eval_from_the_run_folder_alone(run, tmp_path, capsys):
    out, coco = run["out"], run["coco"]
    base = ["--config", str(out / "config.yaml"), "--weights", str(out / "model_final_weights.pth")]
    assert main(["eval", *base, "--device", "cpu"]) == 0  # registers bal_tr from config.yaml
    assert "Evaluation results for bbox" in capsys.readouterr().out
    _forget("bal_tr")
    pred = tmp_path / "pred"
    # Trailing overrides after the options; they win over --conf.
    assert main(["predict", str(run["images"]), *base, "--out", str(pred), "--conf", "0.9",
                 "--gt", str(coco), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]) == 0  # fmt: skip
    results = json.loads((pred / "results.json").read_text())
    assert results and {r["category_id"] for r in results} == {CAT_ID}
    assert {r["image_id"] for r in results} <= {11, 12}
    assert main(["eval", "--gt", str(coco), "--results", str(pred / "results.json")]) == 0
    # Resized copies: a clear message instead of evaluation's RLE size error.
    small = tmp_path / "small"
    small.mkdir()
    with Image.open(coco.parent / "34020010494_e5cb88e1c4_k.jpg") as im:
        im.resize((40, 30)).save(small / "34020010494_e5cb88e1c4_k.jpg")
    capsys.readouterr()
    assert main(["predict", str(small), *base, "--out", str(pred), "--gt", str(coco)]) == 1
    assert "is 30x40 (height x width) but" in capsys.readouterr().err
    _forget("bal_tr")


def test_eval_of_numbered_results_hints_at_predict_gt(run, tmp_path, capsys):
    coco = run["coco"]
    gt = json.loads(coco.read_text())
    other = {"size": [5, 5], "counts": "0"}  # as if predicted on another image
    result = {"image_id": 11, "category_id": CAT_ID, "score": 0.9, "bbox": [0, 0, 2, 2],
              "segmentation": other}  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps([result]))
    assert gt["images"][0]["id"] == 11
    assert main(["eval", "--gt", str(coco), "--results", str(path), "--iou-type", "segm"]) == 1
    assert "masktron predict --gt" in capsys.readouterr().err

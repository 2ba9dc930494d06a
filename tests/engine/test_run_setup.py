"""What runs before a trainer: default_setup, auto_scale_workers, the argument parser."""

import logging

import pytest
from engine_helpers import masktron_logging_kept

from masktron.config import get_cfg
from masktron.engine import default_argument_parser, default_setup
from masktron.engine.run_setup import auto_scale_workers


@pytest.fixture
def restore_logging():
    with masktron_logging_kept():
        yield


def test_default_setup_writes_the_config_and_records_a_drawn_seed(tmp_path, restore_logging):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    cfg.SEED = -1
    default_setup(cfg)
    assert cfg.SEED >= 0
    written = get_cfg()
    written.merge_from_file(str(tmp_path / "run" / "config.yaml"))
    assert written == cfg
    logging.getLogger("masktron.engine.test").info("hello from the test")
    assert "hello from the test" in (tmp_path / "run" / "log.txt").read_text()
    cfg.FLOAT32_PRECISION = "low"
    with pytest.raises(ValueError, match="FLOAT32_PRECISION"):
        default_setup(cfg)


def test_auto_scale_workers_follows_the_linear_scaling_rule():
    cfg = get_cfg()
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 8
    cfg.SOLVER.IMS_PER_BATCH = 16
    cfg.SOLVER.BASE_LR = 0.02
    cfg.SOLVER.MAX_ITER = 90000
    cfg.SOLVER.STEPS = [60000, 80000]
    cfg.SOLVER.WARMUP_ITERS = 1000
    cfg.TEST.EVAL_PERIOD = 5000
    scaled = auto_scale_workers(cfg, 4)
    s = scaled.SOLVER
    assert (s.IMS_PER_BATCH, s.MAX_ITER, s.STEPS, s.WARMUP_ITERS) == (
        8,
        180000,
        [120000, 160000],
        2000,
    )
    assert s.BASE_LR == pytest.approx(0.01) and scaled.TEST.EVAL_PERIOD == 10000
    assert s.REFERENCE_WORLD_SIZE == 4 and cfg.SOLVER.MAX_ITER == 90000  # a new config
    assert auto_scale_workers(cfg, 8) is cfg
    cfg.SOLVER.IMS_PER_BATCH = 12
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 5
    with pytest.raises(ValueError, match="divisible"):
        auto_scale_workers(cfg, 2)


def test_argument_parser_has_detectron2_options():
    args = default_argument_parser().parse_args(
        ["--config-file", "a.yaml", "--num-gpus", "2", "--resume", "SOLVER.BASE_LR", "0.1"]
    )
    assert args.config_file == "a.yaml" and args.num_gpus == 2 and args.resume
    assert args.opts == ["SOLVER.BASE_LR", "0.1"] and args.dist_url == "auto"
    assert default_argument_parser().parse_args(["--config", "b.yaml"]).config_file == "b.yaml"

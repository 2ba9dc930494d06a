"""Config: defaults, YAML with _BASE_, overrides, type checks, unknown keys, freeze, dump."""

import math

import pytest

from masktron.config import ConfigError, UnknownKeyError, get_cfg


def write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults_are_detectron2s():
    cfg = get_cfg()
    assert cfg.MODEL.PIXEL_MEAN == [103.530, 116.280, 123.675]
    assert cfg.MODEL.RPN.BBOX_REG_WEIGHTS == [1.0, 1.0, 1.0, 1.0]
    assert cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS == [10.0, 10.0, 5.0, 5.0]
    assert cfg.INPUT.MIN_SIZE_TEST == 800 and cfg.INPUT.MAX_SIZE_TEST == 1333
    assert cfg.SOLVER.WEIGHT_DECAY_BIAS is None
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.05


def test_base_chain_relative_paths_and_python_literals(tmp_path):
    (tmp_path / "sub").mkdir()
    write(
        tmp_path / "base.yaml",
        "MODEL:\n  MASK_ON: True\n  RESNETS: {DEPTH: 101}\nSOLVER:\n  STEPS: (10, 20)\n",
    )
    child = write(
        tmp_path / "sub" / "child.yaml",
        '_BASE_: "../base.yaml"\nMODEL:\n  RESNETS: {DEPTH: 50}\n'
        "INPUT:\n  MIN_SIZE_TRAIN: (640, 672)\n",
    )
    cfg = get_cfg()
    cfg.merge_from_file(child)
    assert cfg.MODEL.MASK_ON is True  # from the base
    assert cfg.MODEL.RESNETS.DEPTH == 50  # the child wins
    assert cfg.SOLVER.STEPS == [10, 20]  # "(10, 20)" decoded as yacs does
    assert cfg.INPUT.MIN_SIZE_TRAIN == [640, 672]


def test_detectron2_eval_tag_is_evaluated_safely(tmp_path):
    text = (
        "MODEL:\n  ANCHOR_GENERATOR:\n    SIZES: !!python/object/apply:eval "
        '["[[x, x * 2**(1.0/3), x * 2**(2.0/3) ] for x in [32, 64, 128, 256, 512 ]]"]\n'
    )
    cfg = get_cfg()
    cfg.merge_from_file(write(tmp_path / "r.yaml", text))
    sizes = cfg.MODEL.ANCHOR_GENERATOR.SIZES
    assert len(sizes) == 5 and math.isclose(sizes[1][2], 64 * 2 ** (2 / 3))
    evil = "MODEL:\n  WEIGHTS: !!python/object/apply:eval [\"__import__('os').getcwd()\"]\n"
    with pytest.raises(ConfigError, match="not allowed"):
        get_cfg().merge_from_file(write(tmp_path / "evil.yaml", evil))


def test_unknown_key_names_path_and_nearest_key(tmp_path):
    path = write(tmp_path / "bad.yaml", "MODEL:\n  ROI_HEADS:\n    NUM_CLASS: 3\n")
    with pytest.raises(UnknownKeyError) as err:
        get_cfg().merge_from_file(path)
    assert "MODEL.ROI_HEADS.NUM_CLASS" in str(err.value)
    assert "MODEL.ROI_HEADS.NUM_CLASSES" in str(err.value)
    assert "bad.yaml" in str(err.value)
    with pytest.raises(UnknownKeyError, match="did you mean MODEL.WEIGHTS"):
        get_cfg().merge_from_list(["MODEL.WEIGHT", "x.pkl"])
    with pytest.raises(KeyError):  # reading an unknown key; assigning one adds it (Detectron2)
        _ = get_cfg().MODEL.RESNETS.DEPT


def test_types_are_checked():
    cfg = get_cfg()
    with pytest.raises(ConfigError, match="MODEL.RESNETS.DEPTH"):
        cfg.merge_from_list(["MODEL.RESNETS.DEPTH", "fifty"])
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.5", "MODEL.ROI_HEADS.NUM_CLASSES", "3"])
    assert cfg.SOLVER.BASE_LR == 0.5 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    with pytest.raises(ConfigError, match="odd number"):
        cfg.merge_from_list(["SOLVER.BASE_LR"])
    with pytest.raises(ConfigError, match="group of keys"):
        cfg.merge_from_list(["MODEL.RESNETS", "3"])


def test_freeze_clone_and_dump_round_trip(tmp_path):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    cfg.SOLVER.STEPS = (1, 2)
    copy = cfg.clone()
    copy.SEED = 7
    assert cfg.SEED == -1
    cfg.freeze()
    with pytest.raises(ConfigError, match="frozen"):
        cfg.SEED = 3
    again = get_cfg()
    again.merge_from_file(write(tmp_path / "dump.yaml", cfg.dump()))
    assert again.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.5 and again.SOLVER.STEPS == [1, 2]
    assert again == cfg.clone()


def test_missing_or_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        get_cfg().merge_from_file(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        get_cfg().merge_from_file(write(tmp_path / "x.yaml", "MODEL: [unclosed"))
    loop = write(tmp_path / "loop.yaml", '_BASE_: "loop.yaml"\n')
    with pytest.raises(ConfigError, match="loops"):
        get_cfg().merge_from_file(loop)

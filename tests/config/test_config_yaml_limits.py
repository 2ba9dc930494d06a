"""YAML configs cannot ask for unbounded time or memory: expressions, aliases, size are capped."""

import pytest

from masktron.config import ConfigError, get_cfg


def _merge(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    return cfg


EVAL = "!!python/object/apply:eval"


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("[[1]*10**6]", "more than 100,000 list items"),
        ("[[0]*10**11]", "more than 100,000 list items"),
        ("[[x]*1000 for x in [1]*1000]", "more than 100,000 list items"),
        ("[[((10**64)**64)**64]]", "exceed 256 bits"),
        ("[[2**64**64]]", "exceed 256 bits"),
        ("[[9**9**9]]", "exponent too large"),
        ("[[" + "(" * 5000 + "1" + ")" * 5000 + "]]", "longer than 1000 characters"),
        ("[[10.0**64**2]]", "exponent too large"),
        ("[[1e308*1e308**2]]", "out of range"),
    ],
)
def test_expression_bombs_are_refused(tmp_path, expression, reason):
    text = f'MODEL:\n  ANCHOR_GENERATOR:\n    SIZES: {EVAL} ["{expression}"]\n'
    with pytest.raises(ConfigError, match="cannot evaluate config expression") as err:
        _merge(tmp_path, text)
    assert reason in str(err.value) and "c.yaml" in str(err.value)


def test_detectron2_retinanet_expression_still_loads(tmp_path):
    expression = "[[x, x * 2**(1.0/3), x * 2**(2.0/3) ] for x in [32, 64, 128, 256, 512 ]]"
    cfg = _merge(tmp_path, f'MODEL:\n  ANCHOR_GENERATOR:\n    SIZES: {EVAL} ["{expression}"]\n')
    assert len(cfg.MODEL.ANCHOR_GENERATOR.SIZES) == 5


def test_alias_bomb_is_refused_before_expanding(tmp_path):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 10):  # 10**10 leaves once expanded, ~400 bytes of YAML
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("MODEL: {PIXEL_MEAN: *a9}")
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        _merge(tmp_path, "\n".join(lines) + "\n")


def test_small_aliases_still_load(tmp_path):
    cfg = _merge(tmp_path, "MODEL: {PIXEL_MEAN: &m [1.0, 2.0, 3.0], PIXEL_STD: *m}\n")
    assert cfg.MODEL.PIXEL_STD == [1.0, 2.0, 3.0]


def test_oversize_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="larger than 1,048,576 characters"):
        _merge(tmp_path, "# " + "x" * (1 << 20) + "\n")


def test_deep_nesting_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="c.yaml"):
        _merge(tmp_path, "A: " + "[" * 600 + "]" * 600 + "\n")

"""The README's Python examples run with what its install lines install; users' installs bring
no dev tools; the README says how long the tests take (issue 17, friction 6)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _imported_modules(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_readme_examples_import_only_what_the_plain_install_provides():
    blocks = _python_blocks(README)
    assert blocks, "the README has Python examples"
    for code in blocks:
        for module in _imported_modules(code):
            assert importlib.util.find_spec(module) is not None, (module, code[:80])
    assert "cv2" not in _imported_modules(blocks[0])  # the first example needs no extra


def test_extras_split_users_tests_and_dev_tools():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "ruff" not in runtime and "mypy" not in runtime
    assert any(x.startswith("ruff") for x in extras["dev"])
    assert not any(x.startswith("ruff") for x in extras["test"])
    assert any(x.startswith("mypy") for x in extras["test"])  # tests/test_typecheck.py
    assert any("opencv" in x for x in extras["opencv"])
    assert "pip install masktron" in README and 'masktron[opencv]' in README
    assert re.search(r"tests.*\d+-\d+ minutes on 2 CPU cores", README)

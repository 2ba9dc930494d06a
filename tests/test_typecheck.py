"""The package type-checks with mypy (config in pyproject.toml `[tool.mypy]`)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_passes_on_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from mypy import api  # the `test` extra installs mypy

    monkeypatch.chdir(REPO)  # mypy reads pyproject.toml and resolves `masktron` from here
    stdout, stderr, status = api.run(["masktron"])
    assert status == 0, f"mypy exited with {status}:\n{stdout}{stderr}"

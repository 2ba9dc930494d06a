"""Helpers of the web tests (a module of its own: several test folders have a conftest.py,
so `from conftest import ...` would pick whichever was imported first)."""

from __future__ import annotations

from pathlib import Path


def make_app(images: Path, annotations: Path, checkpoint: Path | None, **extra):
    """The app exactly as `masktron serve` builds it from its arguments."""
    import argparse

    from masktron.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    argv = ["--images", str(images), "--annotations", str(annotations), "--device", "cpu"]
    if checkpoint is not None:
        argv += ["--checkpoint", str(checkpoint)]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return serve.build_app(parser.parse_args(argv))

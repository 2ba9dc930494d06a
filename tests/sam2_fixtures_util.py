"""Helpers of SAM 2's parity tests: regenerable checkpoints and Meta's `sam2` as an optional oracle.

Real SAM 2 checkpoints cannot be downloaded in tests. A parity case instead writes a checkpoint in
Meta's released format (`{"model": state_dict}`) whose tensors come from the shared fixture rule
(`../shared/fixtures/fixture_weights.py`, seed 0) applied to the tensor names and shapes of Meta's
models (`models/sam2/data/sam2_checkpoint_shapes.json.gz`, read from `sam2` 1.1.0). Meta's code,
when installed (the `parity` extra), loads the same file and produces the reference outputs;
without it, tests compare against the reference outputs stored next to the shapes.

Variant keys: `sam2.1_hiera_{t,s,b+,l}` and `sam2_hiera_{t,s,b+,l}` (SAM 2.0).
"""

from __future__ import annotations

import atexit
import functools
import gzip
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MASKTRON_SHARED", REPO.parent / "shared"))
SAM2_DATA = REPO / "tests" / "models" / "sam2" / "data"
VARIANTS = tuple(f"{v}_hiera_{s}" for v in ("sam2.1", "sam2") for s in ("t", "s", "b+", "l"))


@functools.cache
def _tmpdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="masktron_sam2_tests_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def _fixture_rule() -> ModuleType:
    path = SHARED / "fixtures" / "fixture_weights.py"
    if not path.is_file():
        pytest.skip(f"fixture rule not found at {path} (set MASKTRON_SHARED)")
    spec = importlib.util.spec_from_file_location("fixture_weights", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _all_shapes() -> dict[str, dict[str, list[int]]]:
    with gzip.open(SAM2_DATA / "sam2_checkpoint_shapes.json.gz", "rt") as f:
        return json.load(f)


def sam2_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Meta's checkpoint tensor names -> shapes for one variant (e.g. `sam2.1_hiera_t`)."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown SAM 2 variant {variant!r}; expected one of {VARIANTS}")
    return {k: tuple(v) for k, v in _all_shapes()[variant].items()}


def sam2_fixture_state_dict(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The fixture rule over the variant's names and shapes, as float32 tensors."""
    weights = _fixture_rule().fixture_weights(sam2_shapes(variant), seed)
    return {k: torch.from_numpy(v) for k, v in weights.items()}


@functools.cache
def sam2_fixture_checkpoint(variant: str, seed: int = 0) -> Path:
    """A checkpoint in Meta's released format, `{"model": state_dict}`, written once per session."""
    path = _tmpdir() / f"{variant}.s{seed}.pt"
    torch.save({"model": sam2_fixture_state_dict(variant, seed)}, path)
    return path


def meta_config_name(variant: str) -> str:
    """Meta's hydra config for a variant, e.g. `configs/sam2.1/sam2.1_hiera_t.yaml`."""
    version = variant.split("_hiera_")[0]
    return f"configs/{version}/{variant}.yaml"


def meta_sam2_available() -> bool:
    """True when Meta's `sam2` package (the oracle) can be imported."""
    return importlib.util.find_spec("sam2") is not None and (
        importlib.util.find_spec("sam2.build_sam") is not None
    )


def build_meta_sam2(
    variant: str, *, video: bool = False, seed: int = 0, image_size: int = 1024
) -> torch.nn.Module:
    """Meta's model (image or video predictor class) on CPU with the fixture checkpoint loaded.

    `image_size` other than the released 1024 goes to Meta's config as `model.image_size` (the
    same weights run at another input size). Skips the calling test when `sam2` is not installed.
    """
    if not meta_sam2_available():
        pytest.skip("Meta's sam2 is not installed (optional `parity` extra)")
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    builder = build_sam2_video_predictor if video else build_sam2
    ckpt = str(sam2_fixture_checkpoint(variant, seed))
    overrides = [f"++model.image_size={image_size}"] if image_size != 1024 else []
    return builder(
        meta_config_name(variant), ckpt, device="cpu", mode="eval", hydra_overrides_extra=overrides
    )

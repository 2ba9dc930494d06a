"""Seeding and saving the random generators that training uses (Python, NumPy, torch, CUDA).

`get_rng_state()` returns the states as values that checkpoints may hold (tensors, numbers,
tuples), so a run resumed from a checkpoint draws the same random numbers (RPN and RoI
sampling, dropout, ...) as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["get_rng_state", "preserve_rng_state", "seed_all_rng", "set_rng_state"]

logger = logging.getLogger(__name__)


def seed_all_rng(seed: int | None = None) -> int:
    """Seed Python's, NumPy's and torch's global generators (all devices).

    Args:
        seed: None draws one from the OS and logs it.

    Returns:
        The seed used.
    """
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") % 2**31
        logger.info("Using a generated random seed %d", seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def get_rng_state() -> dict[str, Any]:
    """The global generators' states, in a form `torch.load(weights_only=True)` reads."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            # (624,) uint32 -> int64 tensor: checkpoints hold tensors, not NumPy arrays
            "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` returned (entries that are absent are left alone)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        keys = np.asarray(s["keys"].numpy() if torch.is_tensor(s["keys"]) else s["keys"])
        np.random.set_state(
            (s["name"], keys.astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"])
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                "The checkpoint has CUDA generator states for %d devices, this machine has %d: "
                "CUDA random numbers will differ from the interrupted run",
                len(cuda_states),
                torch.cuda.device_count(),
            )


@contextlib.contextmanager
def preserve_rng_state() -> Iterator[None]:
    """Run a block (evaluation, validation loss) without changing the global generators."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)

"""Process-wide numeric settings that decide how exactly float32 models run on a GPU."""

from __future__ import annotations

import logging

import torch

__all__ = ["FLOAT32_PRECISIONS", "TORCH_VERSION", "seed_all_rng", "set_float32_precision"]

# (major, minor) of the installed PyTorch, as Detectron2's `detectron2.utils.env` gives it.
TORCH_VERSION = tuple(int(x) for x in torch.__version__.split(".")[:2])

logger = logging.getLogger(__name__)


def seed_all_rng(seed: int | None = None) -> int:
    """Seed Python's, NumPy's and torch's generators (Detectron2's `utils.env.seed_all_rng`)."""
    from masktron.engine.rng import seed_all_rng as seed_everything

    return seed_everything(seed)


FLOAT32_PRECISIONS = ("highest", "high", "medium")


def set_float32_precision(precision: str) -> None:
    """Apply a config's `FLOAT32_PRECISION` to float32 matmuls and cuDNN convolutions.

    Detectron2's meaning: `"highest"` computes in full float32 (outputs match a CPU run to
    float32 rounding), `"high"` and `"medium"` let Ampere and newer GPUs use TF32 (or bfloat16
    for medium matmuls) for speed. `""` leaves PyTorch's settings as they are, which today
    means float32 matmuls but TF32 convolutions. The setting is global to the process and has
    no effect on CPU.

    Args:
        precision: "", "highest", "high" or "medium".

    Raises:
        ValueError: for any other value, naming the config key.
    """
    if precision == "":
        return
    if precision not in FLOAT32_PRECISIONS:
        raise ValueError(
            f"FLOAT32_PRECISION must be '', 'highest', 'high' or 'medium', got {precision!r}"
        )
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.allow_tf32 = precision != "highest"
    logger.info("float32 precision set to %r", precision)

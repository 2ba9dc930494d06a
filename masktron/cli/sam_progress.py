"""A progress bar over SAM's image-encoder blocks: the slow step (tens of seconds on a CPU).

The encoder is one forward pass with no natural progress of its own; a forward hook on each
transformer block moves a tqdm bar, so a user sees it working and how far it has got.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

__all__ = ["encoder_progress"]


@contextmanager
def encoder_progress(model: Any, label: str) -> Iterator[None]:
    """Show a bar "encoding LABEL" over `model.image_encoder.blocks` (SAM 2:
    `image_encoder.trunk.blocks`) while the block runs.

    Each image encoded inside the block (an `--auto` crop layer encodes several) restarts the
    bar. A model without such blocks runs without a bar.
    """
    encoder = getattr(model, "image_encoder", None)
    trunk = getattr(encoder, "trunk", None)  # SAM 2: a Hiera trunk inside the image encoder
    blocks = list(getattr(encoder, "blocks", None) or getattr(trunk, "blocks", None) or [])
    if not blocks:
        yield
        return
    bar = tqdm(total=len(blocks), desc=f"encoding {label}", unit="block", leave=False)

    def step(*_: Any) -> None:
        if bar.n >= bar.total:
            bar.reset()
        bar.update(1)

    handles = [block.register_forward_hook(step) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        bar.close()

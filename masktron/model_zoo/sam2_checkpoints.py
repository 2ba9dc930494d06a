"""Meta's published SAM 2 and SAM 2.1 checkpoints, by variant name.

URLs are those of Meta's `checkpoints/download_ckpts.sh` (facebookresearch/sam2). Meta publishes
no checksums for these files (nor do the file names carry a hash prefix, unlike SAM's), so none
are listed; files are still read only through the safe loader (`weights_only`), strictly
(every tensor name and shape must match the variant).
"""

from __future__ import annotations

from masktron.model_zoo.sam_checkpoints import resolve_checkpoint_name

__all__ = ["SAM2_CHECKPOINTS", "resolve_sam2_checkpoint"]

_BASE_21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_BASE_20 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_FILE_SIZES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}

SAM2_CHECKPOINTS: dict[str, str] = {
    **{f"sam2.1_hiera_{s}": f"{_BASE_21}sam2.1_hiera_{f}.pt" for s, f in _FILE_SIZES.items()},
    **{f"sam2_hiera_{s}": f"{_BASE_20}sam2_hiera_{f}.pt" for s, f in _FILE_SIZES.items()},
}


def resolve_sam2_checkpoint(checkpoint: str) -> tuple[str, str | None]:
    """(path or URL to read, variant or None) for a `--checkpoint` value.

    A variant name ("sam2.1_hiera_t"), or an official file name that is not a local file
    ("sam2.1_hiera_tiny.pt"), becomes Meta's URL; anything else is returned as given.
    """
    return resolve_checkpoint_name(checkpoint, SAM2_CHECKPOINTS)

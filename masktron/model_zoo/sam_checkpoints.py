"""Meta's published Segment Anything checkpoints, by model name.

`masktron sam --checkpoint vit_b` (and `export`) take a model name, a URL or a file: names and
the official file names map to Meta's URLs (segment-anything's README), which go through the
download cache (`masktron.checkpoint.get_local_path`), so an offline machine gets a message
naming the URL and where to put the file.
"""

from __future__ import annotations

import os

__all__ = ["SAM_CHECKPOINTS", "resolve_sam_checkpoint"]

_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_CHECKPOINTS: dict[str, str] = {
    "vit_h": _BASE + "sam_vit_h_4b8939.pth",
    "vit_l": _BASE + "sam_vit_l_0b3195.pth",
    "vit_b": _BASE + "sam_vit_b_01ec64.pth",
}


def resolve_sam_checkpoint(checkpoint: str) -> tuple[str, str | None]:
    """(path or URL to read, model name or None) for a `--checkpoint` value.

    A model name ("vit_b"), or an official file name that is not a local file
    ("sam_vit_b_01ec64.pth"), becomes Meta's URL; anything else is returned as given.
    """
    return resolve_checkpoint_name(checkpoint, SAM_CHECKPOINTS)


def resolve_checkpoint_name(checkpoint: str, table: dict[str, str]) -> tuple[str, str | None]:
    """(path or URL, name or None): a name of `table` (name -> URL), or the file name of one of
    its URLs that is not a local file, becomes the URL; anything else is returned as given."""
    if checkpoint in table:
        return table[checkpoint], checkpoint
    if not os.path.exists(checkpoint):
        for name, url in table.items():
            if os.path.basename(checkpoint) == url.rsplit("/", 1)[1]:
                return url, name
    return checkpoint, None

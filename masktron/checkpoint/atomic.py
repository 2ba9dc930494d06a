"""Moved to `masktron.utils.file_io`; kept while callers move over."""

from masktron.utils.file_io import atomic_open

__all__ = ["atomic_open"]

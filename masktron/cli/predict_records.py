"""`predictions.jsonl`: the results of `masktron predict`, one JSON line per image, as it goes.

Each line is one finished image: `{"file": <path as listed>, "file_name": <drawing's name>,
"image_id": ..., "results": [COCO results or proposals of the image], "panoptic": {...}}`
(`panoptic` for panoptic models only). A line is written and flushed once everything of its
image is on disk (drawing, PNGs), so a line present means an image done: `--resume` skips the
images that have one. A run killed while writing leaves at most one half-written last line: it
is ignored (its image is redone) and cut off before the file is appended to.

Under torchrun, rank 0 writes `predictions.jsonl` and rank r > 0 its own
`predictions.rank<r>.jsonl` (never two writers on one file, on one machine or a shared file
system). At the end rank 0 merges the other ranks' lines (sent through torch.distributed, so
the folder need not be shared) and any part file it can see, once per image, and deletes the
part files; then it writes `results.json` (or `proposals.json`) and `panoptic.json` from the
lines of the images of this run's inputs, in input order.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from masktron.utils.file_io import atomic_open, json_safe, write_json

__all__ = [
    "PREDICTIONS_JSONL",
    "Merger",
    "PredictionWriter",
    "finished_keys",
    "jsonl_path",
    "part_files",
    "read_records",
    "record_key",
    "write_results_files",
]

PREDICTIONS_JSONL = "predictions.jsonl"
_PART = "predictions.rank{}.jsonl"


def record_key(path: str) -> str:
    """The identity of an input across runs and ranks: its path as listed, normalised."""
    return os.path.normpath(path)


def part_files(out_dir: str) -> list[str]:
    """The part files of ranks > 0 in `out_dir` (of this run or of earlier ones)."""
    return sorted(glob.glob(os.path.join(glob.escape(out_dir), _PART.format("*"))))


def jsonl_path(out_dir: str, rank: int) -> str:
    """The file rank `rank` writes its lines to."""
    return os.path.join(out_dir, PREDICTIONS_JSONL if rank == 0 else _PART.format(rank))


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record of a complete line, or None for a damaged one."""
    if not line.endswith(b"\n"):
        return None  # the half-written end of a run that was killed
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("file"), str) else None


def read_records(path: str) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """(byte offset, line, record) of each complete, valid line of `path` (none if missing)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        offset = 0
        for line in f:
            record = _parse(line)
            if record is not None:
                yield offset, line, record
            offset += len(line)


def finished_keys(out_dir: str) -> set[str]:
    """The inputs with a line in `out_dir`'s predictions file or in any part file."""
    keys: set[str] = set()
    for path in [jsonl_path(out_dir, 0), *part_files(out_dir)]:
        keys.update(record_key(r["file"]) for _, _, r in read_records(path))
    return keys


def _cut_partial_line(path: str) -> None:
    """Truncate `path` after its last newline (drop a half-written last line)."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - 65536)
            f.seek(start)
            block = f.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                f.truncate(start + newline + 1)
                return
            position = start
        f.truncate(0)


class PredictionWriter:
    """Appends one flushed JSON line per finished image to a rank's predictions file.

    Args:
        path: the rank's file (`jsonl_path`).
        resume: keep the file's complete lines and append; otherwise start it empty.
    """

    def __init__(self, path: str, *, resume: bool):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if resume and os.path.exists(path):
            _cut_partial_line(path)
        self.path = path
        self._file: IO[bytes] = open(path, "ab" if resume else "wb")
        self.start = self._file.tell()  # where this run's lines begin
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        """Write `record` (strict JSON: NaN as null) as one line and flush it."""
        line = json.dumps(json_safe(record), separators=(",", ":")) + "\n"
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def new_lines(self) -> Iterator[bytes]:
        """The lines this run wrote (read back from the file, after `close`)."""
        with open(self.path, "rb") as f:
            f.seek(self.start)
            yield from f


class Merger:
    """Rank 0's side of the merge: appends lines of images not yet in its predictions file."""

    def __init__(self, out_dir: str):
        self.path = jsonl_path(out_dir, 0)
        self.keys = {record_key(r["file"]) for _, _, r in read_records(self.path)}
        self.added = 0

    def add(self, lines: Iterable[bytes]) -> None:
        with open(self.path, "ab") as f:
            for line in lines:
                record = _parse(line)
                if record is not None and record_key(record["file"]) not in self.keys:
                    self.keys.add(record_key(record["file"]))
                    f.write(line)
                    self.added += 1
            f.flush()
            os.fsync(f.fileno())


def write_results_files(out_dir: str, paths: Sequence[str], results_name: str) -> int:
    """Write `results_name` (a COCO results list) and, for panoptic models, `panoptic.json`
    from the predictions file's lines of `paths`, in that order, atomically.

    The results list is streamed to disk, one image at a time: its size is not bounded by
    memory. Returns the number of images found in the predictions file.
    """
    source = jsonl_path(out_dir, 0)
    offsets: dict[str, int] = {}
    for offset, _, record in read_records(source):
        offsets.setdefault(record_key(record["file"]), offset)
    panoptic: list[Any] = []
    found = 0
    with atomic_open(os.path.join(out_dir, results_name), "w") as out:
        out.write("[")
        separator = ""
        for record in _records_in_order(source, offsets, paths):
            found += 1
            for result in record.get("results", []):
                out.write(separator + json.dumps(result))
                separator = ", "
            if record.get("panoptic") is not None:
                panoptic.append(record["panoptic"])
        out.write("]")
    if panoptic:
        write_json(os.path.join(out_dir, "panoptic.json"), {"annotations": panoptic})
    return found


def _records_in_order(
    source: str, offsets: dict[str, int], paths: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The records of `paths` that `source` holds (at `offsets`), in the order of `paths`."""
    if not offsets:
        return
    with open(source, "rb") as src:
        for path in paths:
            offset = offsets.get(record_key(path))
            if offset is not None:
                src.seek(offset)
                yield json.loads(src.readline())

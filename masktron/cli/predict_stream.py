"""Many images, many processes: how `masktron predict` runs over folders and lists of images.

- Inputs: image files, folders (their images, sorted), and text files of paths (`.txt`: one
  path per line, blank lines and `#` comments skipped, relative paths taken from the list's
  folder).
- Decoding runs ahead of the model in `--workers` processes (a torch DataLoader); `--batch-size`
  images go through the model at once (`DefaultPredictor.predict_batch`: the same outputs as
  one at a time). A progress bar shows images/s.
- Results are written as they come: one line per image in `predictions.jsonl`, flushed
  (masktron.cli.predict_records); at the end `results.json` (or `proposals.json`) and
  `panoptic.json` are written from them atomically, in input order (`--jsonl-only`: not).
- `--resume` skips the images that `predictions.jsonl` of the same `--out` already holds; a
  half-written last line (a killed run) is ignored and its image redone.
- Under `torchrun --nproc-per-node N` (one or several machines) each process joins the group
  (masktron.engine.launch: NCCL on GPUs, gloo on CPUs), takes every N-th remaining image, and
  rank 0 merges the results; the other ranks' lines reach it through torch.distributed.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import logging
import os
import pickle
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from masktron.cli.failures import FailureLog, one_line_reason
from masktron.cli.input_limits import drawing_scale, non_negative_int
from masktron.cli.main import CommandError
from masktron.cli.predict_records import (
    PREDICTIONS_JSONL,
    Merger,
    PredictionWriter,
    finished_keys,
    jsonl_path,
    part_files,
    record_key,
    write_results_files,
)
from masktron.cli.predict_video import _positive_int
from masktron.engine import comm

__all__ = [
    "PATH_LIST_EXTENSIONS",
    "ImageFiles",
    "add_arguments",
    "default_workers",
    "read_path_list",
    "refuse_under_torchrun",
    "run",
]

PATH_LIST_EXTENSIONS = (".txt",)
logger = logging.getLogger(__name__)
_MERGE_CHUNK = 256  # lines per message when ranks send their results to rank 0
# How long a rank that finished its share waits for the slowest one (torchrun ends every rank
# at once when one fails, so a long wait never outlives a dead rank).
_GROUP_TIMEOUT = datetime.timedelta(hours=24)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `masktron predict` for many images."""
    group = parser.add_argument_group(
        "many images", "folders and .txt lists of paths; also under torchrun (docs/speed.md)"
    )
    group.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="processes that decode images ahead of the model (default: CPUs per process - 1, "
        "at most 4; 0: decode in the main process)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1,
        metavar="N",
        help="images per forward pass; same outputs as one at a time (pays on GPUs; default 1)",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help=f"skip the images that --out's {PREDICTIONS_JSONL} holds (an interrupted run)",
    )
    group.add_argument(
        "--jsonl-only",
        action="store_true",
        help=f"write {PREDICTIONS_JSONL} only, not results.json / panoptic.json at the end",
    )


def read_path_list(list_file: str) -> list[str]:
    """The image paths listed in a text file, one per line (see the module docstring)."""
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise CommandError(f"{list_file}: not a text file of image paths (UTF-8)") from None
    folder = os.path.dirname(list_file)
    paths = [
        os.path.join(folder, line) if not os.path.isabs(line) else line
        for line in (raw.strip() for raw in lines)
        if line and not line.startswith("#")
    ]
    if not paths:
        raise CommandError(f"{list_file}: no image paths in the list")
    return paths


def default_workers(num_images: int) -> int:
    """Decoding processes for `num_images` images: the CPUs of this process's share of the
    machine, less one for the model, at most 4; none for a single image."""
    if num_images < 2:
        return 0
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    per_process = max(1, cpus // max(1, comm.get_local_size()))
    return min(4, max(1, per_process - 1))


class ImageFiles(Dataset):
    """Decodes the images (BGR uint8) of `(index, path)` items; in DataLoader workers.

    A file that cannot be read gives its error instead of an image, so one bad file costs
    only itself (with `MASKTRON_DEBUG=1` the error is raised, with its traceback).
    """

    def __init__(self, items: Sequence[tuple[int, str]]):
        from masktron.data.common import DatasetFromList

        # one byte buffer, not a million Python tuples: workers share it copy-on-write
        self.items = DatasetFromList(list(items), copy=False)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict[str, Any]:
        from masktron.data import read_image

        index, path = self.items[k]
        item: dict[str, Any] = {"index": index, "path": path, "image": None, "error": None}
        try:
            item["image"] = read_image(path, format="BGR")
        except Exception as e:  # one file's failure
            if os.environ.get("MASKTRON_DEBUG"):
                raise
            item["error"] = _portable(e, path)
        return item


def _portable(error: Exception, path: str) -> Exception:
    """`error`, or a RuntimeError with its message if it cannot cross processes (pickle)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(one_line_reason(error, path))
    return error


def _init_worker(max_pixels: int | None, _worker_id: int) -> None:
    from masktron.data.image_io import set_max_image_pixels

    set_max_image_pixels(max_pixels)  # --max-pixels, also in "spawn" workers


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def _drawing_names(paths: Sequence[str]) -> list[str]:
    """Each image's drawing name, made unique over the whole input list (the same on every
    rank and in every resumed run)."""
    from masktron.cli.predict import _unique_name

    used: set[str] = set()
    return [_unique_name(path, used) for path in paths]


def _done_mask(out_dir: str, paths: Sequence[str], resume: bool) -> np.ndarray:
    """(N,) bool: the inputs finished by earlier runs, as rank 0 sees them, on every rank."""
    packed = None
    if comm.is_main_process():
        done = np.zeros(len(paths), dtype=bool)
        if resume:
            keys = finished_keys(out_dir)
            done = np.array([record_key(p) in keys for p in paths], dtype=bool)
        else:  # a fresh run: no line of an earlier run may be merged into this one's
            for part in part_files(out_dir):
                os.remove(part)
        packed = np.packbits(done).tobytes()
    packed = comm.broadcast_object(packed)  # also the barrier before ranks open their files
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=len(paths)).astype(bool)


class _Share:
    """This process's share of a run: predicts its images, writes drawings and JSON lines."""

    def __init__(self, args: argparse.Namespace, cfg: Any, paths: Sequence[str], ids: list[Any]):
        from masktron.data.run_datasets import config_metadata
        from masktron.engine import DefaultPredictor

        self.args = args
        self.predictor = DefaultPredictor(cfg)
        self.metadata = config_metadata(cfg)
        self.paths = paths
        self.names = _drawing_names(paths)
        self.ids = ids
        self.failures = FailureLog(args.out if comm.is_main_process() else None, what="image")

    def run(self, indices: Sequence[int], writer: PredictionWriter) -> None:
        """Predict the images `indices` (of the input list), writing each one's line."""
        from tqdm import tqdm

        from masktron.data.image_io import max_image_pixels

        workers = self.args.workers
        workers = default_workers(len(indices)) if workers is None else workers
        loader = DataLoader(
            ImageFiles([(int(i), self.paths[i]) for i in indices]),
            batch_size=self.args.batch_size,
            num_workers=workers,
            collate_fn=_as_list,
            worker_init_fn=functools.partial(_init_worker, max_image_pixels()),
        )
        world = comm.get_world_size()
        desc = "predict" if world == 1 else f"predict (rank 0 of {world})"
        bar = tqdm(total=len(indices), desc=desc, unit="img", disable=not comm.is_main_process())
        with bar:
            for batch in loader:
                outputs = self._predict_together(batch)
                for item in batch:
                    self.failures.attempt(
                        item["path"], functools.partial(self._finish, item, outputs, writer)
                    )
                bar.update(len(batch))

    def _predict_together(self, batch: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """index -> outputs of the readable images of `batch` in one call (more than one);
        {} when that fails, so that each image then runs, and fails, alone."""
        good = [item for item in batch if item["error"] is None]
        if len(good) < 2:
            return {}
        try:
            outputs = self.predictor.predict_batch([item["image"] for item in good])
        except Exception:  # find the image at fault: one at a time
            return {}
        return {item["index"]: out for item, out in zip(good, outputs)}

    def _finish(self, item: dict[str, Any], outputs: dict, writer: PredictionWriter) -> None:
        from masktron.cli.predict import _write_outputs

        if item["error"] is not None:
            raise item["error"]
        index, bgr = item["index"], item["image"]
        output = outputs[index] if index in outputs else self.predictor(bgr)
        results: list[dict] = []
        panoptic: list[dict] = []
        scale = drawing_scale(bgr.shape[0], bgr.shape[1], self.args.max_draw_size)
        name, image_id = self.names[index], self.ids[index]
        _write_outputs(
            output, bgr[:, :, ::-1], self.metadata, self.args.out, name, image_id, results,
            panoptic, not self.args.no_labels, scale=scale,
        )  # fmt: skip
        record = {"file": item["path"], "file_name": name, "image_id": image_id}
        record |= {"results": results} | ({"panoptic": panoptic[0]} if panoptic else {})
        writer.write(record)  # last: a line means that everything of the image is on disk


def _merge_ranks(out_dir: str, writer: PredictionWriter) -> int:
    """Bring every rank's new lines, and any part file rank 0 sees, into rank 0's file.

    Lines travel in chunks through the process group (no shared folder needed); an image
    already in the file is not added again. Returns the number of lines added (on rank 0).
    """
    rank = comm.get_rank()
    counts = comm.all_gather(writer.count if rank else 0)
    lines: Iterator[bytes] = writer.new_lines() if rank else iter(())
    merger = Merger(out_dir) if rank == 0 else None
    for _ in range(-(-max(counts) // _MERGE_CHUNK)):
        chunk = list(itertools.islice(lines, _MERGE_CHUNK))
        for received in comm.gather(chunk):
            if merger is not None:
                merger.add(received)
    if merger is not None:
        for part in part_files(out_dir):  # a shared folder, or earlier runs of more ranks
            with open(part, "rb") as f:
                merger.add(f)
            os.remove(part)
    comm.synchronize()
    if rank and os.path.exists(writer.path):  # this machine's copy, when not shared
        os.remove(writer.path)
    return merger.added if merger is not None else 0


def run(args: argparse.Namespace, cfg: Any, paths: Sequence[str], image_ids: Any) -> int:
    """`masktron predict` on images: in this process, or in each process under torchrun.

    Returns:
        The exit code (the same on every rank): 0 if every image of this run succeeded.
    """
    import torch.distributed as dist

    from masktron.engine.launch import init_distributed_from_env, launched_by_torchrun

    joined = launched_by_torchrun() and not dist.is_initialized()
    if joined:  # ranks done early wait for the others in the merge: allow long runs' spread
        init_distributed_from_env(_GROUP_TIMEOUT)
    try:
        return _run(args, cfg, paths, image_ids)
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def refuse_under_torchrun(what: str) -> None:
    """Raise a CommandError when started by torchrun with several processes: `what` (e.g.
    videos) runs in one process only; each rank would redo all of it."""
    from masktron.engine.launch import launched_by_torchrun

    if launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise CommandError(f"{what} run in one process: start masktron predict without torchrun")


def _first_of_each(paths: Sequence[str], ids: list[Any]) -> tuple[list[str], list[Any]]:
    """The inputs without repeats of a file (a line per file is what --resume relies on)."""
    first: dict[str, int] = {}
    for index, path in enumerate(paths):
        first.setdefault(record_key(path), index)
    keep = sorted(first.values())
    if len(keep) < len(paths):
        logger.warning(
            "%d input(s) listed more than once: each predicted once", len(paths) - len(keep)
        )
    return [paths[i] for i in keep], [ids[i] for i in keep]


def _run(args: argparse.Namespace, cfg: Any, paths: Sequence[str], image_ids: Any) -> int:
    from masktron.cli.predict import _results_name

    rank, world = comm.get_rank(), comm.get_world_size()
    ids = list(image_ids) if image_ids is not None else list(range(1, len(paths) + 1))
    paths, ids = _first_of_each(paths, ids)
    share = _Share(args, cfg, paths, ids)
    done = _done_mask(args.out, paths, args.resume)
    if rank == 0 and done.any():
        print(f"resuming: {int(done.sum())} of {len(paths)} image(s) done before", file=sys.stderr)
    mine = np.flatnonzero(~done)[rank::world]  # every remaining input on exactly one rank
    writer = PredictionWriter(jsonl_path(args.out, rank), resume=args.resume)
    try:
        share.run(mine.tolist(), writer)
    finally:
        writer.close()
    _merge_ranks(args.out, writer)  # also part files of an earlier run under torchrun
    failures = share.failures
    tallies = comm.gather((failures.succeeded, failures.failed))
    code = 0
    if rank == 0:
        failures.succeeded = sum(succeeded for succeeded, _ in tallies)
        failures.failed = [f for _, failed in tallies for f in failed]
        written = PREDICTIONS_JSONL
        if not args.jsonl_only:
            written = _results_name(share.predictor)
            write_results_files(args.out, paths, written)
        skipped = f" ({int(done.sum())} done before)" if done.any() else ""
        print(f"wrote {failures.succeeded} image(s){skipped} and {written} to {args.out}")
        code = failures.finish()
    return int(comm.broadcast_object(code))

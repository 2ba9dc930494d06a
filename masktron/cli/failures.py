"""Per-input failure isolation for commands that process many inputs (predict, video, ONNX, ...).

One bad file must cost only itself: each input runs inside `FailureLog.attempt`; a failure is
reported in one line (`<file>: <reason>`), counted, and the run goes on. At the end
`FailureLog.finish()` writes `failed.json` (a list of `{"file", "reason", "error"}`, empty when
all succeeded) into the output folder and returns the exit code: 0 if every input succeeded, 1
otherwise, after printing a summary line. `MASKTRON_DEBUG=1` re-raises the first failure with
its traceback instead.

Example:
    failures = FailureLog(out_dir, what="image")
    for path in paths:
        failures.attempt(path, lambda: process(path))
    return failures.finish()
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["FAILED_JSON", "FailureLog", "one_line_reason"]

logger = logging.getLogger(__name__)

FAILED_JSON = "failed.json"
T = TypeVar("T")


def one_line_reason(error: BaseException, item: str = "") -> str:
    """The error's message on one line, without a leading `<item>: ` (the line names it)."""
    if isinstance(error, MemoryError):
        return "out of memory while processing it"
    text = " ".join(
        str(error.args[0] if isinstance(error, KeyError) and error.args else error).split()
    )
    for prefix in (f"{item}: ", f"{os.path.abspath(item)}: "):
        if item and text.startswith(prefix):
            text = text[len(prefix) :]
    return text or type(error).__name__


class FailureLog:
    """Collects the inputs that failed during a run; see the module docstring.

    Args:
        out_dir: where `failed.json` is written ("" or None: not written).
        what: the kind of input, for the summary ("image", "video", ...).
        stream: where failure lines and the summary are printed (default stderr).
    """

    def __init__(self, out_dir: str | None, what: str = "input", stream: Any = None):
        self.out_dir = out_dir
        self.what = what
        self.stream = stream
        self.failed: list[dict[str, str]] = []
        self.succeeded = 0

    def attempt(
        self, item: str, fn: Callable[[], T], *, reraise: tuple[type[BaseException], ...] = ()
    ) -> T | None:
        """Run `fn()` for `item`; on an exception record it and return None.

        Exceptions of the `reraise` types are not `item`'s alone (a model that cannot do the
        job fails every input): they propagate and end the run.
        """
        try:
            result = fn()
        except KeyboardInterrupt:
            raise
        except reraise:  # an empty tuple matches nothing
            raise
        except Exception as e:  # any failure of one input is that input's alone
            if os.environ.get("MASKTRON_DEBUG"):
                raise
            self.record(item, e)
            return None
        self.succeeded += 1
        return result

    def record(self, item: str, error: BaseException) -> None:
        """Report and remember a failure of `item`."""
        reason = one_line_reason(error, item)
        self.failed.append({"file": item, "reason": reason, "error": type(error).__name__})
        self._print(f"{item}: {reason}")

    def _print(self, line: str) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream or sys.stderr)  # above any progress bar
        except ImportError:  # pragma: no cover - tqdm is a dependency
            print(line, file=self.stream or sys.stderr)

    def summary(self) -> str:
        total = self.succeeded + len(self.failed)
        text = f"{len(self.failed)} of {total} {self.what}(s) failed"
        if self.out_dir:
            text += f" (listed in {os.path.join(self.out_dir, FAILED_JSON)})"
        return text

    def finish(self) -> int:
        """Write `failed.json`, print the summary when something failed; the exit code."""
        from masktron.utils.file_io import write_json

        if self.out_dir:
            write_json(os.path.join(self.out_dir, FAILED_JSON), self.failed, indent=1)
        if self.failed:
            self._print(f"masktron: {self.summary()}")
            return 1
        return 0

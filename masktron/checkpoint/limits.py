"""Memory limits for untrusted checkpoints: nothing a file asks for may be out of proportion to it.

A pickle can ask for memory without holding the bytes: `bytearray(10**10)` is 20 bytes of pickle,
`numpy.ndarray((10**10,))` barely more, a deflated zip entry can claim 1000 times its size, and
PyTorch's `weights_only` unpickler admits `bytearray` and the legacy `torch.FloatTensor(n)`
constructors. Weights are stored in the file itself, so an honest checkpoint never needs much more
memory than its own size. Each load gets a budget of `2 * file size + 64 MiB`:

- `.pkl` (our restricted unpickler): every `bytearray(n)`, `ndarray(shape)` and
  `_reconstruct(ndarray, shape, dtype)` call is charged against it before it allocates.
- `.pth` zip files: the decompressed sizes the zip directory declares (what PyTorch allocates to
  read each record) must fit, and its `data.pkl` is scanned without running it: if it calls a
  constructor that allocates by count (`bytearray`, legacy tensor classes, quantized/sparse
  rebuilds), no integer in it may exceed the budget.
- legacy (non-zip) `.pth` files declare each storage's size in their pickle, so there no integer
  may exceed the budget.

`OrderedDict`s whose pickled attributes shadow dict methods (`od.keys = 5`) are refused once
loaded.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = [
    "MIN_BUDGET",
    "Budget",
    "check_containers",
    "check_torch_file",
    "load_budget",
]

MIN_BUDGET = 64 << 20  # bytes any checkpoint may allocate, however small
_INT_OPCODES = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
# Callables of torch's weights-only allowlist that allocate memory by a count in their arguments.
_ALLOCATING_NAMES = {
    "bytearray",
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_wrapper_subclass",
    "_rebuild_nested_tensor",
}


def load_budget(path: str) -> int:
    """The bytes a load of `path` may allocate beyond the data it holds: `2 * size + 64 MiB`."""
    return 2 * os.path.getsize(path) + MIN_BUDGET


def _too_big(path: str, what: str, size: int, budget: int) -> Exception:
    from masktron.checkpoint.safe_pickle import CheckpointError

    return CheckpointError(
        f"{path}: refused to load: it asks for {what} of {size:,} bytes, out of proportion to the "
        f"file ({os.path.getsize(path):,} bytes; at most {budget:,} are allowed). The file is "
        "corrupt or crafted to exhaust memory."
    )


class Budget:
    """Charges the allocations a `.pkl` asks for against `load_budget(path)`.

    Args:
        path: the file, named in errors.
    """

    def __init__(self, path: str):
        self.path = path
        self.left = load_budget(path)
        self.total = self.left

    def charge(self, what: str, nbytes: int) -> None:
        if nbytes > self.left:
            raise _too_big(self.path, what, nbytes, self.total)
        self.left -= nbytes

    def bytearray(self, *args: Any) -> bytearray:
        """`bytearray(...)`; an integer argument is a size and is charged first."""
        if args and isinstance(args[0], int):
            self.charge("a bytearray", max(int(args[0]), 0))
        return bytearray(*args)

    def _nbytes(self, shape: Any, dtype: Any) -> int:
        dims = [shape] if isinstance(shape, int) else list(shape)
        if not all(isinstance(d, (int, np.integer)) for d in dims):
            raise TypeError(f"array shape must be integers, got {shape!r}")
        count = 1
        for d in dims:
            count *= max(int(d), 0)
        return count * np.dtype(dtype).itemsize

    def ndarray(self, shape: Any, dtype: Any = float, buffer: Any = None, *args: Any) -> Any:
        """`numpy.ndarray(shape, dtype, buffer, ...)`; without a buffer it allocates: charged."""
        if buffer is None:
            self.charge("an array", self._nbytes(shape, dtype))
        return np.ndarray(shape, dtype, buffer, *args)

    def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
        """numpy's `_reconstruct(subtype, shape, dtype)` (an empty array, filled by its state)."""
        from masktron.checkpoint.safe_pickle import _RECONSTRUCT

        reconstruct: Any = _RECONSTRUCT
        if subtype == self.ndarray:  # the pickle named numpy.ndarray, which we handed out bounded
            subtype = np.ndarray
        self.charge("an array", self._nbytes(shape, dtype))
        return reconstruct(subtype, shape, dtype)


def _pickle_globals_and_ints(path: str, data: bytes) -> tuple[set[str], int]:
    """The globals a pickle names and its largest integer, read without running it."""
    from masktron.checkpoint.safe_pickle import CheckpointError

    names: set[str] = set()
    largest = 0
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "GLOBAL" and isinstance(arg, str):
                names.add(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.add(f"{strings[-2]}.{strings[-1]}")
            elif opcode.name in _INT_OPCODES and isinstance(arg, int):
                largest = max(largest, abs(arg))
            if isinstance(arg, str):
                strings.append(arg)
    except (ValueError, EOFError) as e:  # genops reads a claimed length only as far as data goes
        raise CheckpointError(f"{path}: truncated or corrupt pickle inside ({e})") from e
    return names, largest


def _allocates(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    if attr in _ALLOCATING_NAMES:
        return True
    return module == "torch" and attr.endswith("Tensor")  # torch.FloatTensor(n), torch.Tensor(n)


def _check_zip(path: str, budget: int) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        declared = sum(info.file_size for info in infos)
        if declared > budget:
            raise _too_big(path, "decompressed zip entries", declared, budget)
        pickles = [i for i in infos if i.filename.endswith("data.pkl")]
        for info in pickles:
            names, largest = _pickle_globals_and_ints(path, archive.read(info))
            allocating = sorted(n for n in names if _allocates(n))
            if allocating and largest > budget:
                raise _too_big(path, f"a {allocating[0]} call", largest, budget)


def _check_legacy(path: str, budget: int) -> None:
    # The legacy format is a few pickles (magic, protocol, sys info, object, storage keys) then the
    # storages' raw bytes; the object's storages declare their element counts.
    with open(path, "rb") as f:
        head = f.read(min(os.path.getsize(path), 64 << 20))
    stream = io.BytesIO(head)
    for index in range(5):
        start = stream.tell()
        if start >= len(head):
            return
        try:
            pickletools.dis(stream, out=io.StringIO())
        except Exception:
            return  # not a pickle stream: torch.load reports it
        _, largest = _pickle_globals_and_ints(path, head[start : stream.tell()])
        if index > 0 and largest > budget:  # the first pickle is a magic number
            raise _too_big(path, "a storage", largest, budget)


def check_torch_file(path: str) -> None:
    """Refuse a `.pth` whose zip entries or pickle ask for memory out of proportion to the file.

    Raises:
        CheckpointError: naming the file, what was asked for and the allowed budget.
    """
    budget = load_budget(path)
    if zipfile.is_zipfile(path):
        try:
            _check_zip(path, budget)
        except zipfile.BadZipFile:
            return  # damaged: torch.load gives the detailed error
    else:
        _check_legacy(path, budget)


def check_containers(obj: Any, path: str, _depth: int = 0) -> None:
    """Refuse `OrderedDict`s whose pickled attributes shadow dict methods (`od.keys = 5`).

    A state dict's `_metadata` attribute is kept; anything named like a method of the type would
    make later code fail with an unrelated `TypeError`.
    """
    from masktron.checkpoint.safe_pickle import CheckpointError

    if _depth > 200:
        raise CheckpointError(f"{path}: containers nested more than 200 deep")
    if isinstance(obj, OrderedDict):
        shadowing = sorted(k for k in vars(obj) if hasattr(type(obj), k))
        if shadowing:
            raise CheckpointError(
                f"{path}: refused to load: an OrderedDict in it sets the attribute "
                f"'{shadowing[0]}', which would replace the dict method of that name"
            )
    if isinstance(obj, dict):
        for value in obj.values():
            check_containers(value, path, _depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            check_containers(value, path, _depth + 1)

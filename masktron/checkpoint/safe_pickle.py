"""Reading untrusted checkpoint files without running their code.

A pickle can name any importable callable and call it while it loads (`os.system` included), so
masktron never hands a checkpoint to `pickle.load`. Two readers cover every format it accepts:

- `load_pickle`: `.pkl` files (Detectron2 model zoo, Caffe2/Detectron1, converted torchvision).
  A restricted unpickler admits numpy arrays, scalars and dtypes, `OrderedDict` and builtin
  containers; any other global is refused before it is imported or called. Detectron1 files were
  written by Python 2, so byte strings are decoded as latin-1.
- `load_torch`: `.pth` files through `torch.load(..., weights_only=True)`, PyTorch's own
  restricted unpickler (tensors, numbers, strings and containers).

Both raise `CheckpointError` (a `ValueError`) naming the file for a truncated, corrupt or unsafe
file instead of a deep unpickling trace, and refuse allocations out of proportion to the file
(`masktron.checkpoint.limits`). `.pth` loading needs torch >= 2.10: older releases' `weights_only`
loader can be bypassed (CVE-2025-32434, CVE-2026-24747).
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import collections
import os
import pickle
import re
from typing import Any

import numpy as np
import torch

from masktron.checkpoint import limits

__all__ = ["CheckpointError", "UnsafePickleError", "load_pickle", "load_torch"]

# torch.load(weights_only=True) is bypassable before 2.6 (CVE-2025-32434) and 2.10 (CVE-2026-24747).
SAFE_TORCH = (2, 10)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: truncated, corrupt, unsafe or of the wrong layout."""


class UnsafePickleError(CheckpointError):
    """A pickle that names a global outside the allowlist (it could run code when loaded)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for `bytes`; only the latin-1 codec."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused codec {encoding!r} in _codecs.encode")
    return text.encode("latin1")


# The callables numpy's own pickles refer to, looked up from objects instead of by module path,
# so neither numpy 1 (`numpy.core`) nor numpy 2 (`numpy._core`) warns about the other's path.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # ndarray.__reduce__ -> (_reconstruct, ...)
_SCALAR = np.float32(0).__reduce__()[0]  # numpy scalar __reduce__ -> (scalar, ...)
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 -> (_frombuffer, ...)

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _SCALAR
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _FROMBUFFER
for _name in ("dict", "list", "tuple", "set", "frozenset", "bytearray", "complex"):
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays and plain containers need.

    Args:
        file: a binary file object positioned at the start of the pickle.
        filename: named in error messages.
    """

    def __init__(self, file: Any, filename: str):
        super().__init__(file, encoding="latin1")
        self.filename = filename
        budget = limits.Budget(filename)
        # Constructors that allocate by a count in their arguments are charged against a budget.
        self._bounded = {
            bytearray: budget.bytearray,
            np.ndarray: budget.ndarray,
            _RECONSTRUCT: budget.reconstruct,
        }

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles say `__builtin__.set`, `copy_reg...`; translate as pickle itself would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.filename}: refused to load: the pickle references '{module}.{name}', "
                "which could run code. masktron loads only numpy arrays, numbers, strings and "
                "containers from .pkl files. If you trust this file, convert it to a plain "
                "{name: array} dict in a separate process."
            )
        return self._bounded.get(obj, obj)


def _memory_refusal(path: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: refused to load: it asks for more memory than is available; the file is "
        "corrupt or crafted to exhaust memory"
    )


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a `.pkl` checkpoint with the restricted unpickler.

    Args:
        path: a local file.

    Returns:
        The unpickled object (usually a dict of numpy arrays, possibly nested).

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the pickle references a global outside the allowlist.
        CheckpointError: the file is truncated or not a pickle.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            loaded = RestrictedUnpickler(f, path).load()
            limits.check_containers(loaded, path)
            return loaded
        except CheckpointError:
            raise
        except RecursionError:
            raise CheckpointError(f"{path}: refused to load: containers nested too deep") from None
        except MemoryError:
            raise _memory_refusal(path) from None
        except (EOFError, pickle.UnpicklingError) as e:
            raise CheckpointError(
                f"{path}: truncated or corrupt pickle ({_short(e)}); download it again"
            ) from e
        except Exception as e:  # a corrupt stream can fail inside numpy or in a memo lookup
            raise CheckpointError(f"{path}: not a readable pickle ({_short(e)})") from e


def load_torch(path: str | os.PathLike) -> Any:
    """Load a `.pth` checkpoint with `torch.load(weights_only=True)` onto the CPU.

    Args:
        path: a local file.

    Returns:
        The loaded object (a state dict, or a dict holding one under "model").

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the file holds objects other than tensors, numbers, strings, containers.
        CheckpointError: the file is truncated or not a PyTorch checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _require_safe_torch(path)
    limits.check_torch_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines()]
        refused = next((ln for ln in lines if "GLOBAL" in ln), None)  # a class or function
        if refused is not None:
            raise UnsafePickleError(
                f"{path}: refused to load: it holds objects other than tensors, numbers, strings "
                f"and containers, which could run code ({refused}). If you trust it, re-save only "
                "its state_dict with torch.save in a separate process."
            ) from e
        raise CheckpointError(
            f"{path}: not a readable weights-only PyTorch checkpoint ({_unpickler_reason(e)}); "
            "it may be truncated or corrupt"
        ) from e
    except MemoryError:
        raise _memory_refusal(path) from None
    except Exception as e:  # zip, storage and unpickling failures all mean a damaged file
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise CheckpointError(
            f"{path}: truncated or corrupt PyTorch checkpoint ({_short(e)}); "
            "if it was downloaded, delete it and download it again"
        ) from e
    limits.check_containers(loaded, path)
    return loaded


def _unpickler_reason(error: BaseException) -> str:
    """The reason inside torch's weights-only error, which puts it on lines after its label."""
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(Check the documentation|$)", text, re.S)
    reason = " ".join(match.group(1).split()) if match else ""
    return reason or _short(error)


def _require_safe_torch(path: str) -> None:
    version = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    if version < SAFE_TORCH:
        raise CheckpointError(
            f"{path}: refused to load: torch {torch.__version__} is installed, and the restricted "
            "loader of torch before 2.10 can be made to run code by a crafted .pth "
            "(CVE-2025-32434, CVE-2026-24747). Upgrade: pip install 'torch>=2.10'."
        )

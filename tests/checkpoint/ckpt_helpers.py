"""Helpers for checkpoint tests: models with given state-dict names, Python-2 style pickles."""

from __future__ import annotations

import io
import json
import os
import pickle
from typing import Any

import numpy as np
import torch
from torch import nn

SHAPES_JSON = os.path.join(os.path.dirname(__file__), "data", "mask_rcnn_R_50_FPN_3x.shapes.json")
UNLOADED = -7.0  # every parameter of a `TensorTree` starts here, so loading is visible


class TensorTree(nn.Module):
    """A module whose state dict has exactly the given names and shapes.

    Stands in for the real models (written elsewhere): `a.b.weight` becomes parameter `weight` of
    submodule `a.b`. `running_mean`/`running_var` are buffers initialised as FrozenBN does
    (0 and 1 - eps); every other tensor is a parameter filled with `UNLOADED`.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        for name, shape in shapes.items():
            *path, leaf = name.split(".")
            module: nn.Module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, nn.Module())
                module = module._modules[part]
            if leaf == "running_mean":
                module.register_buffer(leaf, torch.zeros(shape))
            elif leaf == "running_var":
                module.register_buffer(leaf, torch.ones(shape) - 1e-5)
            else:
                module.register_parameter(leaf, nn.Parameter(torch.full(tuple(shape), UNLOADED)))


def load_d2_shapes() -> dict[str, tuple[int, ...]]:
    """The 307 names and shapes of Detectron2's mask_rcnn_R_50_FPN_3x checkpoint."""
    with open(SHAPES_JSON) as f:
        return {k: tuple(v) for k, v in json.load(f)["shapes"].items()}


def random_arrays(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose opcodes can be changed
    """Writes pickles as Python 2 with numpy 1 did: strings as BINSTRING, `__builtin__`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _binstring(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)

    def save_bytes(self, obj: bytes) -> None:
        self._binstring(obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        if obj.isascii():  # a Python 2 `str` (bytes); Python 3 reads it back with latin-1
            self._binstring(obj.encode("ascii"))
            self.memoize(obj)
        else:
            pickle._Pickler.save_str(self, obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle_bytes(obj: Any) -> bytes:
    """`obj` pickled as a Python 2 / numpy 1 program would have (protocol 2)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 2 names its helpers under numpy._core; Python 2 files say numpy.core.
    return buf.getvalue().replace(b"numpy._core.", b"numpy.core.")

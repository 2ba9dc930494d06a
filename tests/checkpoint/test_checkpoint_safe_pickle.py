"""Restricted reading of .pkl and .pth files: what loads, what is refused, what a bad file says."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch
from ckpt_helpers import py2_pickle_bytes

from masktron.checkpoint import (
    CheckpointError,
    DetectionCheckpointer,
    UnsafePickleError,
    load_pickle,
    load_torch,
)


def _example() -> dict:
    return {
        "model": collections.OrderedDict(
            a=np.arange(12, dtype=np.float32).reshape(3, 4),
            b=np.array([1, 2, 3], dtype=np.int64),
            c=np.array(2.5, dtype=np.float16),
            d=np.array([1.0, 2.0], dtype=">f8"),  # big-endian, as some old writers produced
        ),
        "__author__": "Detectron2 Model Zoo",
        "matching_heuristics": False,
        "nested": [1, 2.5, (3, "x"), {4, 5}, frozenset([6]), b"raw", None, True, 1 + 2j],
        "iteration": np.int64(89999),
    }


def _assert_same(got, expected) -> None:
    assert type(got) is type(expected) or isinstance(expected, np.generic)
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            _assert_same(got[key], expected[key])
    elif isinstance(expected, np.ndarray):
        # numpy itself may return a byte-swapped dtype in native order; values must agree
        assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_loads_numpy_containers_at_every_protocol(tmp_path, protocol):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_example(), protocol=protocol))
    _assert_same(load_pickle(path), _example())


def test_loads_python2_numpy1_pickle_with_latin1(tmp_path):
    data = {"blobs": {"conv1_w": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2)}}
    raw = py2_pickle_bytes(data)
    assert b"numpy.core.multiarray" in raw and b"U\x07conv1_w" in raw  # Python-2 opcodes
    path = tmp_path / "R-50.pkl"
    path.write_bytes(raw)
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["blobs"]["conv1_w"], data["blobs"]["conv1_w"])


class _RunsCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsSubprocess(_RunsCommand):
    def __reduce__(self):
        return (subprocess.call, (["touch", self.marker],))


class _Execs(_RunsCommand):
    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


class _FakeArray(_RunsCommand):
    # Goes through an allowed function with a refused class as argument.
    def __reduce__(self):
        return (np.zeros(1).__reduce__()[0], (_RunsCommand, (0,), b"b"))


@pytest.mark.parametrize("payload", [_RunsCommand, _CallsSubprocess, _Execs, _FakeArray])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tmp_path / "model_final_abcdef.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": payload(marker)}, "__author__": "x"}))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    assert str(path) in str(err.value) and "refused" in str(err.value)
    assert not marker.exists()
    # the same file through the public checkpointer
    with pytest.raises(UnsafePickleError):
        DetectionCheckpointer(torch.nn.Linear(1, 1)).load(str(path))
    assert not marker.exists()


def test_refusal_names_the_global(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(_RunsCommand(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"'(posix|nt)\.system'"):
        load_pickle(path)


def test_codecs_encode_only_latin1(tmp_path):
    path = tmp_path / "x.pkl"
    # a protocol-2 pickle of bytes, with the codec changed to one that is not latin-1
    raw = pickle.dumps(b"abc", protocol=2).replace(b"latin1", b"rot_13")
    path.write_bytes(raw)
    with pytest.raises(CheckpointError):
        load_pickle(path)


class _Plain:
    """An ordinary class: loading it would import and instantiate code named by the file."""


@pytest.mark.parametrize("payload, named", [(_RunsCommand, "system"), (_Plain, "_Plain")])
def test_pth_that_runs_code_is_refused_and_never_runs(tmp_path, payload, named):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    value = payload(marker) if payload is _RunsCommand else payload()
    torch.save({"model": {"w": torch.zeros(1)}, "extra": value}, path)
    with pytest.raises(UnsafePickleError) as err:
        load_torch(path)
    assert str(path) in str(err.value) and named in str(err.value)
    with pytest.raises(UnsafePickleError):
        DetectionCheckpointer(torch.nn.Linear(1, 1)).load(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 1, 40, 0.5])
def test_truncated_pkl_gives_clear_error(tmp_path, keep):
    raw = pickle.dumps(_example(), protocol=4)
    path = tmp_path / "model_final_f10217.pkl"
    path.write_bytes(raw[: int(len(raw) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError) as err:
        load_pickle(path)
    assert str(path) in str(err.value)
    assert "truncated" in str(err.value) or "not a readable pickle" in str(err.value)


def test_garbage_pkl_gives_clear_error(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_bytes(b"this is not a pickle at all\n")
    with pytest.raises(CheckpointError, match="notes.pkl"):
        load_pickle(path)


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_truncated_pth_gives_clear_error(tmp_path, zipfile_format):
    full = tmp_path / "full.pth"
    state = {"model": {"w": torch.randn(64, 64)}, "iteration": 3}
    torch.save(state, full, _use_new_zipfile_serialization=zipfile_format)
    raw = full.read_bytes()
    path = tmp_path / "model_0000999.pth"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError) as err:
        load_torch(path)
    assert str(path) in str(err.value) and "truncated or corrupt" in str(err.value)
    with pytest.raises(CheckpointError, match="model_0000999.pth"):
        DetectionCheckpointer(torch.nn.Linear(64, 64)).load(str(path))


def test_empty_pth_gives_clear_error(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth"):
        load_torch(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_torch(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        DetectionCheckpointer(torch.nn.Linear(1, 1)).load(str(tmp_path / "nope.pkl"))

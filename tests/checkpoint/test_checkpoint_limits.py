"""Checkpoints that ask for memory out of proportion to their size are refused before allocating.

Each bomb claims far more memory than the test machine has (10**13 bytes): a refusal with our
message proves the check ran before the allocation, which would otherwise fail or exhaust memory.
"""

from __future__ import annotations

import collections
import pickle
import zipfile

import numpy as np
import pytest
import torch

from masktron.checkpoint import CheckpointError, load_pickle, load_torch

HUGE = 10**13


class _Call:
    """Pickles as `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _write_pth_with_pickle(tmp_path, name: str, data_pkl: bytes, compress: int = 0) -> str:
    """A `.pth` zip whose data.pkl is `data_pkl` (the rest from a real torch.save)."""
    ok = tmp_path / "ok.pth"
    torch.save({"a": torch.zeros(2)}, ok)
    path = tmp_path / name
    with zipfile.ZipFile(ok) as src, zipfile.ZipFile(path, "w", compress) as dst:
        for info in src.infolist():
            body = data_pkl if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info.filename, body)
    return str(path)


@pytest.mark.parametrize(
    "payload",
    [
        _Call(bytearray, HUGE),
        _Call(np.ndarray, (HUGE,)),
        _Call(np.zeros(1).__reduce__()[0], np.ndarray, (HUGE,), "b"),
    ],
    ids=["bytearray", "ndarray", "_reconstruct"],
)
def test_pkl_allocation_bomb_is_refused(tmp_path, payload):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps({"w": payload}, protocol=2))
    assert path.stat().st_size < 200
    with pytest.raises(CheckpointError, match="out of proportion to the file") as err:
        load_pickle(path)
    assert str(path) in str(err.value)


def test_pkl_many_small_allocations_share_one_budget(tmp_path):
    path = tmp_path / "many.pkl"
    path.write_bytes(pickle.dumps([_Call(bytearray, 8 << 20) for _ in range(20)], protocol=2))
    with pytest.raises(CheckpointError, match="out of proportion"):
        load_pickle(path)


def test_pkl_honest_bytearray_and_arrays_still_load(tmp_path):
    path = tmp_path / "ok.pkl"
    value = {"b": bytearray(b"xyz"), "a": np.arange(1000.0), "z": _Call(bytearray, 16)}
    path.write_bytes(pickle.dumps(value, protocol=2))
    loaded = load_pickle(path)
    assert loaded["b"] == bytearray(b"xyz") and loaded["z"] == bytearray(16)
    np.testing.assert_array_equal(loaded["a"], np.arange(1000.0))


def test_pth_bytearray_bomb_is_refused(tmp_path):
    path = _write_pth_with_pickle(
        tmp_path, "bomb.pth", pickle.dumps({"a": _Call(bytearray, HUGE)}, protocol=2)
    )
    with pytest.raises(CheckpointError, match="bytearray call of 10,000,000,000,000 bytes") as err:
        load_torch(path)
    assert "bomb.pth" in str(err.value)


def test_pth_zip_entry_decompressing_far_beyond_the_file_is_refused(tmp_path):
    ok = tmp_path / "ok.pth"
    torch.save({"a": torch.zeros(2)}, ok)
    path = tmp_path / "deflated.pth"
    with zipfile.ZipFile(ok) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open("ok/data/1", "w") as f:  # 80 MiB of zeros deflate to ~80 KB
            for _ in range(80):
                f.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="decompressed zip entries"):
        load_torch(path)


def test_pth_on_torch_older_than_2_10_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "ok.pth"
    torch.save({"a": torch.zeros(2)}, path)
    monkeypatch.setattr(torch, "__version__", "2.9.1+cpu")
    with pytest.raises(CheckpointError, match="CVE-2025-32434, CVE-2026-24747") as err:
        load_torch(path)
    assert "torch>=2.10" in str(err.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_pth_unsupported_opcode_message_keeps_the_reason(tmp_path):
    # protocol 4 FRAME (opcode 149) is not in torch's weights-only unpickler
    path = _write_pth_with_pickle(tmp_path, "p4.pth", pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(CheckpointError) as err:
        load_torch(path)
    message = str(err.value)
    assert "Unsupported operand 149" in message and "error:)" not in message


def _shadowing_ordered_dict():
    od = collections.OrderedDict(w=np.zeros(2))
    od.__dict__["keys"] = 5
    return od


def test_ordered_dict_with_method_attribute_is_refused(tmp_path):
    pkl = tmp_path / "od.pkl"
    pkl.write_bytes(pickle.dumps({"model": _shadowing_ordered_dict()}, protocol=2))
    with pytest.raises(CheckpointError, match="attribute 'keys'"):
        load_pickle(pkl)
    od = collections.OrderedDict(w=1)
    od.__dict__["values"] = "x"
    pth = _write_pth_with_pickle(tmp_path, "od.pth", pickle.dumps({"model": od}, protocol=2))
    with pytest.raises(CheckpointError, match="attribute 'values'"):
        load_torch(pth)


def test_state_dict_metadata_attribute_is_kept(tmp_path):
    path = tmp_path / "sd.pth"
    state = torch.nn.Linear(2, 2).state_dict()
    torch.save(state, path)
    assert hasattr(load_torch(path), "_metadata")

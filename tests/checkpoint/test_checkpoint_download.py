"""The download cache, offline. `urlopen` is replaced by fakes; no test reaches the network."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import urllib.error

import numpy as np
import pytest
import torch

from masktron.checkpoint import DetectionCheckpointer, DownloadError, get_local_path
from masktron.checkpoint.download import cache_path, expected_digests, resolve_url

R50 = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
R50_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"


class _Response(io.BytesIO):
    """What urlopen returns: a readable body with headers, usable as a context manager."""

    def __init__(self, body: bytes, length: int | None = None, fail_after: int | None = None):
        super().__init__(body)
        size = len(body) if length is None else length
        self.headers = {"Content-Length": str(size)}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(n, 7) if n > 0 else n)  # small chunks: several reads


def _serve(monkeypatch, body: bytes, **kw) -> list[str]:
    requested: list[str] = []

    def fake_urlopen(request, timeout=None):
        requested.append(request.full_url)
        return _Response(body, **kw)

    monkeypatch.setattr("masktron.checkpoint.download.urlopen", fake_urlopen)
    return requested


def _leftovers(folder) -> list[str]:
    return [f for _, _, files in os.walk(folder) for f in files if f.endswith(".tmp")]


def test_urls_and_cache_layout(tmp_path, monkeypatch):
    assert resolve_url(R50) == R50_URL
    assert resolve_url("/data/model.pth") is None and resolve_url("model.pth") is None
    monkeypatch.setenv("MASKTRON_CACHE", str(tmp_path / "c"))
    expected = str(tmp_path / "c" / "detectron2" / "ImageNetPretrained" / "MSRA" / "R-50.pkl")
    assert cache_path(R50) == cache_path(R50_URL) == expected
    with pytest.raises(ValueError, match=r"\.\."):
        cache_path("https://example.com/a/../../etc/passwd")
    monkeypatch.delenv("MASKTRON_CACHE")
    assert cache_path(R50).startswith(os.path.expanduser("~/.cache/masktron/detectron2/"))


def test_local_paths_pass_through(tmp_path):
    assert get_local_path(str(tmp_path / "x.pth")) == str(tmp_path / "x.pth")
    assert get_local_path(f"file://{tmp_path}/x.pth") == str(tmp_path / "x.pth")


def test_cache_hit_does_not_download(tmp_path, monkeypatch):
    dest = cache_path(R50)
    os.makedirs(os.path.dirname(dest))
    with open(dest, "wb") as f:
        f.write(b"placed by hand")
    assert get_local_path(R50) == dest  # the autouse fixture makes any download fail


def test_offline_message_names_url_and_where_to_put_the_file(tmp_path):
    with pytest.raises(DownloadError) as err:
        get_local_path(R50, progress=False)
    message = str(err.value)
    assert R50_URL in message and cache_path(R50) in message and "MASKTRON_CACHE" in message
    assert not os.path.exists(cache_path(R50))


def test_http_error_is_reported(monkeypatch):
    def not_found(request, timeout=None):
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None)

    monkeypatch.setattr("masktron.checkpoint.download.urlopen", not_found)
    with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        get_local_path(R50, progress=False)


def test_download_verifies_detectron2_md5_prefix(tmp_path, monkeypatch):
    body = os.urandom(1000)
    good = hashlib.md5(body).hexdigest()[:6]
    url = f"detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_{good}.pkl"
    assert expected_digests(url) == [("md5", good)]
    requested = _serve(monkeypatch, body)
    path = get_local_path(url, progress=False)
    assert requested == [resolve_url(url)]
    assert path == cache_path(url) and open(path, "rb").read() == body
    assert get_local_path(url, progress=False) == path and len(requested) == 1  # cached now

    bad = "000000" if good != "000000" else "111111"
    with pytest.raises(DownloadError, match="integrity check failed: md5"):
        get_local_path(url.replace(good, bad), progress=False)
    assert not os.path.exists(cache_path(url.replace(good, bad)))
    assert _leftovers(tmp_path) == []


def test_torchvision_sha256_prefix_and_explicit_sha256(monkeypatch):
    body = b"weights" * 100
    sha = hashlib.sha256(body).hexdigest()
    url = f"https://download.pytorch.org/models/resnet50-{sha[:8]}.pth"
    assert expected_digests(url) == [("sha256", sha[:8])]
    _serve(monkeypatch, body)
    assert open(get_local_path(url, progress=False), "rb").read() == body
    other = "https://example.com/weights/model.pth"
    assert expected_digests(other) == []
    with pytest.raises(DownloadError, match="sha256"):
        get_local_path(other, sha256="ab" * 32, progress=False)
    assert open(get_local_path(other, sha256=sha, progress=False), "rb").read() == body
    with pytest.raises(DownloadError, match="expected"):  # a cache hit is checked too
        get_local_path(other, sha256="cd" * 32, progress=False)


@pytest.mark.parametrize("fault", ["short", "reset"])
def test_interrupted_download_leaves_nothing_in_the_cache(tmp_path, monkeypatch, fault):
    body = os.urandom(100)
    kw = {"length": 200} if fault == "short" else {"fail_after": 50}
    _serve(monkeypatch, body, **kw)
    url = "https://example.com/models/model.pkl"
    with pytest.raises(DownloadError) as err:
        get_local_path(url, progress=False)
    assert url in str(err.value) and cache_path(url) in str(err.value)
    assert not os.path.exists(cache_path(url)) and _leftovers(tmp_path) == []


def test_checkpointer_loads_from_a_url(monkeypatch):
    weights = {"weight": np.full((2, 3), 0.5, np.float32), "bias": np.ones(2, np.float32)}
    body = pickle.dumps({"model": weights, "__author__": "Detectron2 Model Zoo"})
    md5 = hashlib.md5(body).hexdigest()[:6]
    _serve(monkeypatch, body)
    model = torch.nn.Linear(3, 2)
    DetectionCheckpointer(model).load(f"detectron2://Tiny/1/model_final_{md5}.pkl")
    assert (model.weight == 0.5).all() and (model.bias == 1).all()


def _cached_d2_file(monkeypatch, body: bytes) -> tuple[str, list[str]]:
    md5 = hashlib.md5(body).hexdigest()[:6]
    url = f"detectron2://Tiny/2/model_final_{md5}.pkl"
    requested = _serve(monkeypatch, body)
    return get_local_path(url, progress=False), requested


def test_cache_hit_with_a_flipped_byte_is_moved_aside_and_fetched_again(monkeypatch, caplog):
    body = pickle.dumps({"model": {"w": np.arange(50, dtype=np.float32)}, "__author__": "t"})
    path, requested = _cached_d2_file(monkeypatch, body)
    url = requested[0]
    damaged = bytearray(body)
    damaged[len(body) // 2] ^= 1
    with open(path, "wb") as f:
        f.write(damaged)
    assert get_local_path(url, progress=False) == path and len(requested) == 2
    assert open(path, "rb").read() == body
    assert open(path + ".corrupt", "rb").read() == damaged
    assert f"moved it to {path}.corrupt" in caplog.text and "md5" in caplog.text


def test_damaged_cache_hit_offline_names_the_moved_file(monkeypatch):
    body = b"0123456789" * 10
    path, requested = _cached_d2_file(monkeypatch, body)
    with open(path, "r+b") as f:
        f.write(b"X")

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr("masktron.checkpoint.download.urlopen", refuse)
    with pytest.raises(DownloadError) as err:
        get_local_path(requested[0], progress=False)
    assert f"was moved to {path}.corrupt" in str(err.value) and path in str(err.value)


def test_verified_cache_hit_is_not_hashed_again(monkeypatch):
    import masktron.checkpoint.cache_check as cache_check

    path, requested = _cached_d2_file(monkeypatch, b"abc" * 100)
    calls = []
    real = cache_check.file_digests
    monkeypatch.setattr(cache_check, "file_digests", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        get_local_path(requested[0], progress=False)
    assert calls == []  # verified while downloading, then known by size and modification time
    os.utime(path, ns=(1, 1))  # changed: hashed again
    get_local_path(requested[0], progress=False)
    assert len(calls) == 1


def test_truncated_cached_pkl_is_moved_aside_with_its_path_named(monkeypatch):
    body = b"\x80\x02}q\x00(X\x05\x00\x00\x00model"  # a pickle cut short
    url = "https://example.com/weights/model.pkl"  # no checksum in its name
    _serve(monkeypatch, body)
    with pytest.raises(Exception) as err:
        DetectionCheckpointer(torch.nn.Linear(1, 1)).load(url)
    path = cache_path(url)
    assert f"moved to {path}.corrupt" in str(err.value) and "truncated" in str(err.value)
    assert not os.path.exists(path) and os.path.exists(path + ".corrupt")

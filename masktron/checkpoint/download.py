"""Checkpoint URLs: a download cache with integrity checks and an actionable offline message.

`get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl")` returns a local file, downloading
it on first use into `$MASKTRON_CACHE` (default `~/.cache/masktron`) at
`<cache>/<URL path after the host>`, e.g. `<cache>/detectron2/ImageNetPretrained/MSRA/R-50.pkl`.
A download goes to a temporary file beside its destination and is renamed into place only once it
is complete and verified, so an interrupted download never leaves a broken file in the cache.

Integrity: Detectron2's model-zoo files carry the first 6 hex digits of their **md5** in their
name (`model_final_f10217.pkl`; Detectron2's MODEL_ZOO.md: "any model on this page contains its
md5 prefix in its file name"); torchvision's carry a sha256 prefix (`resnet50-0676ba61.pth`);
`sha256=` checks a full sha256 for any URL.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from urllib.request import urlopen

from tqdm import tqdm

from masktron.checkpoint.cache_check import move_aside, remember_verified, verify_cached
from masktron.utils.file_io import atomic_open

__all__ = ["DownloadError", "cache_path", "get_cache_dir", "get_local_path", "resolve_url"]

logger = logging.getLogger(__name__)

CACHE_ENV = "MASKTRON_CACHE"
DEFAULT_CACHE = os.path.join("~", ".cache", "masktron")
DETECTRON2_PREFIX = "detectron2://"
# `masktron://X` names a file shipped in the package, under masktron/model_zoo/.
PACKAGE_PREFIX = "masktron://"
PACKAGE_ZOO_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_zoo"
)
DETECTRON2_BASE_URL = "https://dl.fbaipublicfiles.com/detectron2/"
# Detectron2's `catalog://ImageNetPretrained/<name>` (its ModelCatalog): Caffe2 ImageNet models
# published with Detectron (1), e.g. the GroupNorm ResNet of Misc/mask_rcnn_R_50_FPN_3x_gn.
CATALOG_PREFIX = "catalog://"
DETECTRON1_BASE_URL = "https://dl.fbaipublicfiles.com/detectron/"
CATALOG_IMAGENET = {
    "MSRA/R-50": "ImageNetPretrained/MSRA/R-50.pkl",
    "MSRA/R-101": "ImageNetPretrained/MSRA/R-101.pkl",
    "FAIR/R-50-GN": "ImageNetPretrained/47261647/R-50-GN.pkl",
    "FAIR/R-101-GN": "ImageNetPretrained/47592356/R-101-GN.pkl",
    "FAIR/X-101-32x8d": "ImageNetPretrained/20171220/X-101-32x8d.pkl",
    "FAIR/X-101-64x4d": "ImageNetPretrained/FBResNeXt/X-101-64x4d.pkl",
    "FAIR/X-152-32x8d-IN5k": "ImageNetPretrained/25093814/X-152-32x8d-IN5k.pkl",
}
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_D2_HASH = re.compile(r"_([0-9a-f]{6})\.(pkl|pth)$")  # model_final_f10217.pkl -> md5 prefix
_TV_HASH = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt)$")  # resnet50-0676ba61.pth -> sha256 prefix


class DownloadError(OSError):
    """A URL that could not be fetched or whose content failed its integrity check."""


def get_cache_dir() -> str:
    """The cache folder: `$MASKTRON_CACHE`, else `~/.cache/masktron` (not created here)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE))


def resolve_url(path_or_url: str) -> str | None:
    """The http(s) URL that `path_or_url` names, or None for a local path (or a `file://` URL).

    `detectron2://X` means `https://dl.fbaipublicfiles.com/detectron2/X`;
    `catalog://ImageNetPretrained/<name>` is looked up in Detectron2's catalog of ImageNet models.
    """
    if path_or_url.startswith(DETECTRON2_PREFIX):
        return DETECTRON2_BASE_URL + path_or_url[len(DETECTRON2_PREFIX) :].lstrip("/")
    if path_or_url.startswith(CATALOG_PREFIX):
        name = path_or_url[len(CATALOG_PREFIX) :]
        key = name.removeprefix("ImageNetPretrained/")
        if not name.startswith("ImageNetPretrained/") or key not in CATALOG_IMAGENET:
            raise ValueError(
                f"{path_or_url!r} is not in the model catalog; known: "
                f"{sorted('catalog://ImageNetPretrained/' + k for k in CATALOG_IMAGENET)}"
            )
        return DETECTRON1_BASE_URL + CATALOG_IMAGENET[key]
    scheme = urllib.parse.urlsplit(path_or_url).scheme.lower()
    return path_or_url if scheme in ("http", "https") else None


def cache_path(url: str, cache_dir: str | None = None) -> str:
    """Where `url` (http(s) or `detectron2://`) lives in the cache: `<cache>/<path after host>`."""
    resolved = resolve_url(url) or url
    parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(resolved).path.split("/")]
    parts = [p for p in parts if p]
    if not parts or any(p in (".", "..") or os.sep in p or "\0" in p for p in parts):
        raise ValueError(f"cannot cache {url!r}: its path has no file name or climbs with '..'")
    return os.path.join(cache_dir or get_cache_dir(), *parts)


def expected_digests(url: str, sha256: str | None = None) -> list[tuple[str, str]]:
    """(hash name, expected hex digest or prefix) pairs that a download of `url` must satisfy."""
    checks = [("sha256", sha256.lower())] if sha256 else []
    split = urllib.parse.urlsplit(resolve_url(url) or url)
    name = os.path.basename(split.path)
    if split.netloc == "dl.fbaipublicfiles.com" and split.path.startswith("/detectron2/"):
        if m := _D2_HASH.search(name):
            checks.append(("md5", m.group(1)))
    elif split.netloc == "download.pytorch.org" and (m := _TV_HASH.search(name)):
        checks.append(("sha256", m.group(1)))
    return checks


def _place_by_hand(url: str, dest: str) -> str:
    return (
        f"If this machine is offline, download {url} elsewhere and place it at\n  {dest}\n"
        f"(the cache folder is set by the {CACHE_ENV} environment variable)."
    )


def _fetch(url: str, dest: str, checks: list[tuple[str, str]], progress: bool) -> None:
    # md5 here is a file checksum, not security: allowed on FIPS systems too.
    hashes = {algo: hashlib.new(algo, usedforsecurity=False) for algo, _ in checks}
    request = urllib.request.Request(url, headers={"User-Agent": "masktron"})
    with urlopen(request, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        received = 0
        bar = tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
            desc=os.path.basename(dest),
        )  # fmt: skip
        with bar, atomic_open(dest, "wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if total is not None and received != total:
                raise DownloadError(f"{url}: download ended after {received} of {total} bytes")
            for algo, expected in checks:
                got = hashes[algo].hexdigest()
                if not got.startswith(expected):
                    raise DownloadError(
                        f"{url}: integrity check failed: {algo} is {got}, expected "
                        f"{'a digest starting with ' if len(expected) < len(got) else ''}"
                        f"{expected}. The download was discarded; try again."
                    )


def get_local_path(
    path_or_url: str | os.PathLike,
    *,
    sha256: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> str:
    """A local file for a path or URL, downloading URLs into the cache on first use.

    Args:
        path_or_url: a local path, `file://` URL, http(s) URL, `detectron2://` URL, or
            `masktron://` (a file shipped in the package's model_zoo folder).
        sha256: optional full sha256 the file must have (checked on download and on cache hits).
            A cache hit is also checked against the checksum in its name; one that fails is
            moved to `<path>.corrupt` and downloaded again.
        cache_dir: overrides `$MASKTRON_CACHE` for this call.
        progress: show a tqdm progress bar while downloading.

    Returns:
        A local path. Local paths are returned as given (with `~` expanded), even if missing.

    Raises:
        DownloadError: the URL could not be fetched (the message names the URL and the exact path
            where the file can be placed by hand) or failed its integrity check.
    """
    path_or_url = os.fspath(path_or_url)
    if path_or_url.startswith(PACKAGE_PREFIX):
        # Weights shipped inside the package (the model zoo's own models).
        return os.path.join(PACKAGE_ZOO_DIR, path_or_url[len(PACKAGE_PREFIX) :])
    if path_or_url.startswith("file://"):
        return urllib.request.url2pathname(urllib.parse.urlsplit(path_or_url).path)
    url = resolve_url(path_or_url)
    if url is None:
        return os.path.expanduser(path_or_url)
    dest = cache_path(url, cache_dir)
    checks = expected_digests(url, sha256)
    moved = ""
    if os.path.isfile(dest):
        logger.debug("Using cached %s for %s", dest, url)
        failure = verify_cached(dest, checks)
        if failure is None:
            return dest
        aside = move_aside(dest, f"the cached file failed its integrity check ({failure})")
        moved = f"\nThe cached copy failed its integrity check and was moved to {aside}."
    logger.info("Downloading %s to %s", url, dest)
    try:
        _fetch(url, dest, checks, progress)
        remember_verified(dest, checks)
    except DownloadError as e:
        raise DownloadError(f"{e}{moved}\n{_place_by_hand(url, dest)}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        message = f"could not download {url} ({reason}).{moved}"
        raise DownloadError(f"{message}\n{_place_by_hand(url, dest)}") from e
    return dest

"""Frames of a video for SAM 2's video predictor, decoded and resized only when asked for.

`VideoFrames(path, image_size=1024)` behaves as the frame tensor Meta's `load_video_frames`
returns (`len`, `frames[i]` -> (3, S, S) float32, normalised with ImageNet mean and std), but
holds no decoded frame beyond a small cache: a ten-minute video costs a few frames of memory,
not 18000 x 12 MB of float tensors.

Sources:
- a folder of images (JPEG, PNG, ...): ordered by the number in the file name when every name
  is a number (`00000.jpg`, `00002.jpg`, ... as Meta's loader sorts them), by name otherwise;
- a video file (mp4, mkv, mov, avi, webm, ...), decoded by PyAV (`pip install masktron[video]`).
  Its packets are indexed once when opened (no decoding), so any frame can be reached by
  seeking to the key frame before it; frames decoded on the way are cached, which keeps
  reverse propagation cheap.

Each frame is resized to S x S with PIL's bicubic filter from 8-bit RGB, then divided by 255 in
float64 and normalised in float32, the arithmetic of Meta's JPEG loader (equal tensors on the
same files).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from masktron.data.video_sources import (
    IMAGE_EXTENSIONS,
    VideoDecodeError,
    is_video_file,
    require_av,
)

__all__ = ["VideoFrames", "list_frame_files"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def list_frame_files(folder: str) -> list[str]:
    """The image files of `folder` in frame order (numeric stems numerically, else by name)."""
    names = [f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise VideoDecodeError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in folder")
    stems = [os.path.splitext(n)[0] for n in names]
    if all(s.isdigit() for s in stems):
        names = [n for _, n in sorted(zip((int(s) for s in stems), names))]
    else:  # natural order: frame2 before frame10

        def key(name: str) -> list:
            return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

        names.sort(key=key)
    return [os.path.join(folder, n) for n in names]


class _FolderDecoder:
    """Frame i of a folder: its i-th image file as (H, W, 3) uint8 RGB."""

    keep_window = 0  # any frame is read directly: nothing decoded on the way
    fps = None  # a folder has no frame rate

    def __init__(self, folder: str):
        self.files = list_frame_files(folder)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int, keep: Callable[[int, np.ndarray], None]) -> np.ndarray:
        from PIL import Image

        path = self.files[index]
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as e:
            raise VideoDecodeError(f"{path}: cannot read frame {index} ({e})") from None

    def close(self) -> None:
        pass


class _VideoFileDecoder:
    """Frame i of a video file, in presentation order, by seeking to the key frame before it.

    Opening demuxes the file once (packets only, no decoding) to learn every frame's
    timestamp; `read` decodes forward from the current position when the frame is ahead and
    near, else seeks. Frames decoded on the way are offered to `keep` (the cache).
    """

    SEEK_AHEAD = 32  # decode forward rather than seek when the frame is this close ahead
    keep_window = 16  # frames just before the one asked for that are offered to `keep`

    def __init__(self, path: str):
        av = require_av()
        self._error = av.error.FFmpegError
        self.path = path
        try:
            self._container = av.open(path)
        except self._error as e:
            raise VideoDecodeError(f"{path}: cannot open as a video ({e})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoDecodeError(f"{path}: has no video stream")
        self._stream = self._container.streams.video[0]
        try:
            pts = [p.pts for p in self._container.demux(self._stream) if p.pts is not None]
        except self._error as e:
            raise VideoDecodeError(f"{path}: cannot read its packets ({e})") from None
        if not pts:
            raise VideoDecodeError(f"{path}: has no frames")
        self._pts = sorted(pts)
        self._index_of = {p: i for i, p in enumerate(self._pts)}
        self._frames: Any = None  # the decoding generator; None: seek before the next read
        self._next = 0  # index of the frame the generator yields next
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None

    def __len__(self) -> int:
        return len(self._pts)

    def read(self, index: int, keep: Callable[[int, np.ndarray], None]) -> np.ndarray:
        if self._frames is None or not self._next <= index < self._next + self.SEEK_AHEAD:
            self._container.seek(self._pts[index], stream=self._stream, backward=True)
            self._frames = self._container.decode(self._stream)
            self._next = -1  # unknown until the first decoded frame says
        try:
            for frame in self._frames:
                position = self._index_of.get(frame.pts) if frame.pts is not None else None
                if position is None:  # a frame without a known timestamp follows the last
                    position = self._next if self._next >= 0 else 0
                self._next = position + 1
                if position < index:
                    if index - position < self.keep_window:
                        keep(position, frame.to_ndarray(format="rgb24"))
                    continue
                return frame.to_ndarray(format="rgb24")
        except self._error as e:
            raise VideoDecodeError(f"{self.path}: broken at frame {index} ({e})") from None
        self._frames = None
        raise VideoDecodeError(f"{self.path}: frame {index} could not be decoded")

    def close(self) -> None:
        self._container.close()


class VideoFrames:
    """A video's frames as normalised (3, S, S) float32 tensors, decoded on demand.

    Args:
        source: a folder of images or a video file.
        image_size: the model's input side S (SAM 2: 1024).
        cache_size: resized frames kept (uint8, 3 * S * S bytes each: 3 MB at 1024).
        mean, std: per-channel normalisation of [0, 1] RGB values.

    Attributes:
        video_height, video_width: the size of the original frames.
        name: the file or folder name without extension (for output files).
        fps: a video file's frame rate; None for a folder.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        image_size: int,
        cache_size: int = 16,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ):
        path = os.fspath(source)
        if os.path.isdir(path):
            self._decoder: Any = _FolderDecoder(path)
        elif os.path.isfile(path) and is_video_file(path):
            self._decoder = _VideoFileDecoder(path)
        elif os.path.isfile(path):
            raise VideoDecodeError(f"{path}: not a video file nor a folder of frames")
        else:
            raise VideoDecodeError(f"{path}: no such file or folder")
        self.path = path
        self.name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        self.image_size = int(image_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(int(cache_size), 1)
        self._decoder.keep_window = self._cache_size - 1
        self._lock = threading.Lock()
        self._last: tuple[int, np.ndarray] | None = None  # the last frame decoded, full size
        self.fps: float | None = self._decoder.fps
        self._mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]  # (3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        first = self.original(0)
        self.video_height, self.video_width = int(first.shape[0]), int(first.shape[1])

    def __len__(self) -> int:
        return len(self._decoder)

    def original(self, index: int) -> np.ndarray:
        """Frame `index` at its own size, (H, W, 3) uint8 RGB (only the last one is kept)."""
        index = self._check(index)
        with self._lock:
            if self._last is None or self._last[0] != index:
                self._last = (index, self._decoder.read(index, self._keep))
            return self._last[1]

    def resized(self, index: int) -> np.ndarray:
        """Frame `index` resized to (S, S, 3) uint8 RGB, from the cache when there."""
        index = self._check(index)
        with self._lock:
            hit = self._cache.get(index)
            if hit is not None:
                self._cache.move_to_end(index)
                return hit
            if self._last is not None and self._last[0] == index:
                rgb = self._last[1]
            else:
                rgb = self._decoder.read(index, self._keep)
                self._last = (index, rgb)
            image = self._resize(rgb)
            self._keep_resized(index, image)
            return image

    def __getitem__(self, index: int) -> torch.Tensor:
        """Frame `index` as the model takes it: (3, S, S) float32, normalised."""
        rgb = self.resized(index)
        x = torch.from_numpy(rgb.astype(np.float64) / 255.0).permute(2, 0, 1).float()  # (3,S,S)
        return (x - self._mean) / self._std

    def _check(self, index: int) -> int:
        n = len(self)
        index = int(index) + (n if int(index) < 0 else 0)
        if not 0 <= index < n:
            raise IndexError(f"{self.path}: frame {index} out of range (the video has {n})")
        return index

    def _resize(self, rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        size = (self.image_size, self.image_size)
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))

    def _keep(self, index: int, rgb: np.ndarray) -> None:
        """A frame decoded on the way to another: cached (already under the lock)."""
        if index not in self._cache:
            self._keep_resized(index, self._resize(rgb))

    def _keep_resized(self, index: int, image: np.ndarray) -> None:
        self._cache[index] = image
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Release the video file (a folder holds nothing open)."""
        self._decoder.close()
        self._cache.clear()

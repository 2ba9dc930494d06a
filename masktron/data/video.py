"""Video in and out: frames from a file, a folder of images or a webcam; MP4 out.

Decoding and encoding go through PyAV (FFmpeg's libraries, shipped inside its wheels, including
the H.264 encoder): it reads every container FFmpeg reads (mp4, avi, mov, mkv, webm, ...), gives
each frame's timestamp (used by `start`/`end`), raises a clear error on broken data instead of
returning an empty frame, and writes browser-playable H.264 MP4. Install it with
`pip install masktron[video]`.

    with VideoReader("walk.mp4", start=2.0, end=5.0, every=2) as reader:
        for frame in reader:   # decoded in a background thread, a few frames ahead
            frame.image        # (H, W, 3) uint8 BGR, as DefaultPredictor takes it
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from masktron.data.video_sources import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    VideoInfo,
    is_video_file,
    open_source,
    require_av,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoDecodeError",
    "VideoFrame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "is_video_file",
]

_END = object()


@dataclass
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: the frame's number in the source, from 0.
        time: seconds from the start of the source.
        image: (H, W, 3) uint8 BGR.
    """

    index: int
    time: float
    image: np.ndarray


class VideoReader:
    """Frames of a video file, a folder of images or a webcam, decoded in a background thread.

    Args:
        source: a video file, a folder of images (sorted by name), or a webcam index (an int,
            or a string of digits).
        fps: frame rate of a folder of images (default 30); ignored for files and webcams.
        start: seconds to skip at the beginning.
        end: seconds at which to stop (None: the end of the source).
        every: keep one frame in `every`.
        queue_size: frames decoded ahead of the consumer. A webcam drops its oldest frame when
            the consumer falls behind, rather than lagging ever further.

    Iterating yields `VideoFrame`s. When the source breaks (corrupt or truncated data), the
    frames decoded before the break are yielded first, then `VideoDecodeError` is raised with
    `frames_read` set. `info` describes the source; `expected_frames` estimates how many frames
    the iteration gives (None when unknown, as for a webcam).
    """

    def __init__(
        self,
        source: str | int | os.PathLike,
        *,
        fps: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        every: int = 1,
        queue_size: int = 8,
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
        self._start, self._end, self._every = float(start), end, int(every)
        self._opened = open_source(source, fps=fps, start=self._start)
        self.info: VideoInfo = self._opened.info
        self._queue: queue.Queue = queue.Queue(maxsize=max(int(queue_size), 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_read = 0

    @property
    def live(self) -> bool:
        """Whether the source is a camera (frames arrive in real time, no end)."""
        return bool(self._opened.live)

    @property
    def expected_frames(self) -> int | None:
        total = self.info.num_frames
        if total is None or self.info.fps <= 0:
            return None
        first = int(np.ceil(self._start * self.info.fps - 1e-6))
        last = total if self._end is None else min(total, int(np.ceil(self._end * self.info.fps)))
        return max(0, -(-(last - first) // self._every))

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._thread is not None:
            raise RuntimeError("a VideoReader can be iterated once")
        self._thread = threading.Thread(target=self._produce, name="masktron-video", daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, VideoDecodeError):
                        item.frames_read = self.frames_read
                    raise item
                self.frames_read += 1
                yield item
        finally:
            self.close()

    def _produce(self) -> None:
        """The decoding thread: select frames by time and `every`; hand them over the queue."""
        kept = 0
        try:
            for index, time, image in self._opened.frames():
                if self._stop.is_set():
                    return
                if time < self._start - 1e-6:
                    continue
                if self._end is not None and time >= self._end - 1e-6:
                    break
                kept += 1
                if (kept - 1) % self._every:
                    continue
                self._put(VideoFrame(index, time, image))
            self._put(_END)
        except BaseException as e:  # handed to the consumer, raised in its thread
            self._put(e)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._opened.live and isinstance(item, VideoFrame):
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()  # a live camera: drop the oldest frame

    def close(self) -> None:
        """Stop decoding and release the source (safe to call twice)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._opened.close()


class VideoWriter:
    """Encode BGR frames into a video file (H.264 MP4 by default), written atomically.

    The file appears under its name only when `close()` is called; `abort()` (or an exception
    in a `with` block) leaves no partial file behind.

    Args:
        path: the output file; its extension picks the container (.mp4, .mkv, .avi, .mov).
        fps: frames per second.
        width, height: the frame size; odd sizes are padded by one pixel (H.264 needs even).
        crf: H.264 quality (lower is better; 23 is FFmpeg's default).
    """

    def __init__(
        self, path: str | os.PathLike, *, fps: float, width: int, height: int, crf: int = 23
    ):
        av = require_av()
        self.path = os.fspath(path)
        self.frames_written = 0
        self._size = (int(height), int(width))
        folder, base = os.path.split(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        ext = os.path.splitext(base)[1].lower()
        # FFmpeg's MP4 "faststart" pass reopens the file by name, so write a named temporary
        # file beside the output and rename it when done (atomic, like masktron's other outputs)
        fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=ext or ".mp4")
        os.close(fd)
        fmt = {".mkv": "matroska", ".avi": "avi", ".mov": "mov"}.get(ext, "mp4")
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self._container: Any = av.open(self._tmp, mode="w", format=fmt, options=options)
        except Exception:
            os.unlink(self._tmp)
            raise
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._frame_type = av.VideoFrame

    def write(self, image: np.ndarray) -> None:
        """Add one (H, W, 3) uint8 BGR frame of the size given at construction."""
        if image.shape[:2] != self._size:
            raise ValueError(f"{self.path}: frame of size {image.shape[:2]}, expected {self._size}")
        h, w = self._size
        if h % 2 or w % 2:  # repeat the last row/column to reach even sizes
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = self._frame_type.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would give
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the file being written."""
        if self._container is None:
            return
        with contextlib.suppress(Exception):
            self._container.close()
        self._container = None
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.abort() if exc_type is not None else self.close()

"""The sources `VideoReader` decodes: video files and webcams through PyAV, folders of images.

Each source has `info` (`VideoInfo`), `live` (a camera: frames come in real time), `frames()`
(a generator of (index, seconds, (H, W, 3) uint8 BGR) from the first frame at or after the
start time it was opened with) and `close()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoDecodeError",
    "VideoInfo",
    "is_video_file",
    "open_source",
    "require_av",
    "webcam_device",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FOLDER_FPS = 30.0


class VideoDecodeError(RuntimeError):
    """A source could not be opened or broke while decoding; `frames_read` frames came first."""

    frames_read: int = 0


@dataclass
class VideoInfo:
    """What a source says about itself.

    Attributes:
        name: a short name for output files (the file or folder name without extension).
        fps: frames per second (a folder's is the `fps` it was opened with).
        width, height: frame size in pixels.
        num_frames: frames in the whole source, as its header declares; None when unknown.
    """

    name: str
    fps: float
    width: int
    height: int
    num_frames: int | None


def is_video_file(path: str) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def require_av() -> Any:
    """The `av` module (PyAV), or an error that says how to install it."""
    try:
        import av
    except ImportError:
        raise VideoDecodeError(
            "video needs PyAV: pip install 'masktron[video]' (or pip install av)"
        ) from None
    return av


def webcam_device(index: int, platform: str = sys.platform) -> tuple[str, str]:
    """(device, FFmpeg input format) of webcam number `index` on this platform."""
    if platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if platform == "darwin":
        return str(index), "avfoundation"
    raise VideoDecodeError(
        f"webcam {index}: opening a camera by index works on Linux and macOS only; "
        "save a recording to a file and pass that"
    )


def open_source(source: str | int | os.PathLike, *, fps: float | None, start: float) -> Any:
    """Open a file, a folder of images or a webcam index (see the module docstring)."""
    if isinstance(source, int):
        return _PyAVSource(source, start=0.0)
    path = os.fspath(source)
    if path.isdigit() and not os.path.exists(path):  # "0": a webcam, unless such a file exists
        return _PyAVSource(int(path), start=0.0)
    if os.path.isdir(path):
        return _FolderSource(path, fps=fps or DEFAULT_FOLDER_FPS)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such file or folder")
    return _PyAVSource(path, start=start)


class _PyAVSource:
    """A video file or a webcam, decoded by FFmpeg through PyAV."""

    def __init__(self, source: str | int, *, start: float):
        av = require_av()
        self._error = av.error.FFmpegError
        self.live = isinstance(source, int)
        if isinstance(source, int):
            device, fmt = webcam_device(source)
            name, label = f"webcam{source}", f"webcam {source} ({device})"
        else:
            device, fmt, label = source, None, source
            name = os.path.splitext(os.path.basename(source))[0]
        self._label = label
        try:
            self._container = av.open(device, format=fmt)
        except self._error as e:
            raise VideoDecodeError(f"{label}: cannot open as a video ({e})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoDecodeError(f"{label}: has no video stream")
        self._stream = stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else DEFAULT_FOLDER_FPS
        num_frames = self._declared = int(stream.frames) or None
        if num_frames is None and not self.live and self._container.duration:
            num_frames = int(round(self._container.duration / 1e6 * fps))  # microseconds
        ctx = stream.codec_context
        self.info = VideoInfo(name, fps, int(ctx.width), int(ctx.height), num_frames)
        self._time_offset = (
            float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        )
        self._seeked = start > 0 and not self.live
        if self._seeked:  # to the key frame before `start`; frames before it are skipped later
            self._container.seek(int(start * 1e6))

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        stream, fps = self._stream, self.info.fps
        origin: float | None = None
        decoded = 0
        try:
            for frame in self._container.decode(stream):
                if frame.time is None:
                    seconds = decoded / fps
                else:  # a file's times count from its start_time; a camera's from frame 0
                    if origin is None:
                        origin = float(frame.time) if self.live else self._time_offset
                    seconds = float(frame.time) - origin
                index = int(round(seconds * fps)) if self._seeked else decoded
                decoded += 1
                yield index, seconds, frame.to_ndarray(format="bgr24")
        except self._error as e:
            raise VideoDecodeError(
                f"{self._label}: the video is broken after {decoded} decoded frame(s) ({e})"
            ) from None
        # The header's frame count (an MP4's sample table) is exact: fewer frames decoded from
        # the start means the file was cut short, and FFmpeg may end quietly on that.
        declared = self._declared
        if declared and not self._seeked and decoded < declared - 1:
            raise VideoDecodeError(
                f"{self._label}: ended after {decoded} of the {declared} frames its header "
                "declares (truncated or damaged file)"
            )

    def close(self) -> None:
        self._container.close()


class _FolderSource:
    """The images of a folder, sorted by file name, as frames at a fixed rate."""

    live = False

    def __init__(self, folder: str, *, fps: float):
        from masktron.data.image_io import get_image_size

        self._files = sorted(
            os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not self._files:
            raise VideoDecodeError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in folder")
        height, width = get_image_size(self._files[0])
        name = os.path.basename(os.path.normpath(folder))
        self.info = VideoInfo(name, float(fps), width, height, len(self._files))

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        from masktron.data.detection_utils import read_image

        size = (self.info.height, self.info.width)
        for index, path in enumerate(self._files):
            try:
                image = read_image(path, format="BGR")
            except (OSError, ValueError) as e:
                raise VideoDecodeError(f"{path}: cannot read frame {index} ({e})") from None
            if image.shape[:2] != size:
                raise VideoDecodeError(
                    f"{path}: frame {index} is {image.shape[1]}x{image.shape[0]}, "
                    f"the first frame {size[1]}x{size[0]}"
                )
            yield index, index / self.info.fps, np.ascontiguousarray(image)

    def close(self) -> None:
        pass

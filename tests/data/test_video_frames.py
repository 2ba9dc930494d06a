"""SAM 2's lazy frame source: frame order, Meta's arithmetic, random access into video files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masktron.data.video_frames import VideoFrames, list_frame_files
from masktron.data.video_sources import VideoDecodeError


def _levels(n: int, h: int = 40, w: int = 56) -> list[np.ndarray]:
    """Frames whose brightness encodes their number (survives lossy encoding)."""
    return [np.full((h, w, 3), 10 + 5 * k, np.uint8) for k in range(n)]


def test_folder_order_and_meta_arithmetic(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = {}
    for number in (0, 2, 10, 4):  # numeric order 0, 2, 4, 10 (by name: 0, 10, 2, 4)
        image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / f"{number:d}.jpg", quality=95)
        images[number] = np.asarray(Image.open(tmp_path / f"{number:d}.jpg").convert("RGB"))
    assert [p.rsplit("/", 1)[-1] for p in list_frame_files(str(tmp_path))] == [
        "0.jpg", "2.jpg", "4.jpg", "10.jpg"
    ]  # fmt: skip
    frames = VideoFrames(tmp_path, image_size=64, cache_size=2)
    assert (len(frames), frames.video_height, frames.video_width) == (4, 30, 50)
    assert frames.fps is None and frames.name == tmp_path.name
    # Meta's loader: PIL bicubic resize, /255 in float64, then float32 mean/std normalisation
    resized = np.asarray(Image.fromarray(images[10]).resize((64, 64), Image.Resampling.BICUBIC))
    expected = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x = frames[3]
    assert x.dtype == torch.float32 and x.shape == (3, 64, 64)
    assert torch.equal(x, (expected - mean) / std)
    assert np.array_equal(frames.original(1), images[2])
    assert len(frames._cache) <= 2  # the cache stays bounded
    with pytest.raises(IndexError, match="frame 4 out of range"):
        frames[4]


def test_natural_order_and_bad_inputs(tmp_path):
    from PIL import Image

    for name in ("f10.png", "f2.png", "f1.png"):
        Image.new("RGB", (8, 6)).save(tmp_path / name)
    assert [p.rsplit("/", 1)[-1] for p in list_frame_files(str(tmp_path))] == [
        "f1.png", "f2.png", "f10.png"
    ]  # fmt: skip
    with pytest.raises(VideoDecodeError, match="no such file or folder"):
        VideoFrames(tmp_path / "missing", image_size=16)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(VideoDecodeError, match="notes.txt: not a video file"):
        VideoFrames(tmp_path / "notes.txt", image_size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="no images"):
        VideoFrames(empty, image_size=16)


def test_video_file_random_access_backwards(tmp_path):
    pytest.importorskip("av")
    from masktron.data.video import VideoReader, VideoWriter

    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=10.0, width=56, height=40) as writer:
        for frame in _levels(40):
            writer.write(frame)
    frames = VideoFrames(path, image_size=32, cache_size=4)
    assert (len(frames), frames.video_height, frames.video_width, frames.fps) == (40, 40, 56, 10.0)

    decoded = [float(f.image.mean()) for f in VideoReader(path)]  # in order, BGR = RGB here

    # backwards (reverse propagation), forwards, and jumps: each frame is the one asked for
    for k in [39, 38, 37, 20, 0, 1, 2, 30, 5]:
        assert abs(frames.original(k).mean() - decoded[k]) < 0.5, k
        assert abs(frames.resized(k).mean() - decoded[k]) < 1.5, k
    assert len(frames._cache) <= 4
    frames.close()

"""Video in and out: frame selection by time and step, MP4 round trip, broken files, cameras."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from masktron.data.video import VideoDecodeError, VideoReader, VideoWriter  # noqa: E402
from masktron.data.video_sources import webcam_device  # noqa: E402


def _frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Frames whose brightness encodes their number (survives lossy encoding)."""
    return [np.full((h, w, 3), 10 + 12 * k, np.uint8) for k in range(n)]


def _write(path, frames, fps=10.0) -> None:
    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps=fps, width=w, height=h) as writer:
        for f in frames:
            writer.write(f)


def test_mp4_round_trip_with_start_end_every(tmp_path):
    path = tmp_path / "clip.mp4"
    _write(path, _frames(12))
    with VideoReader(path) as reader:
        assert (reader.info.fps, reader.info.width, reader.info.height) == (10.0, 64, 48)
        assert reader.info.num_frames == 12 and reader.expected_frames == 12
        frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    assert np.allclose([f.time for f in frames], np.arange(12) / 10)
    levels = [int(round(f.image.mean())) for f in frames]
    assert np.abs(np.array(levels) - (10 + 12 * np.arange(12))).max() <= 6
    # 0.25 s to 0.95 s, every second frame: frames 3, 5, 7, 9 (seeks, then skips by time)
    reader = VideoReader(path, start=0.25, end=0.95, every=2)
    assert reader.expected_frames == 4
    assert [f.index for f in reader] == [3, 5, 7, 9]


def test_frame_folder_and_odd_sizes(tmp_path):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(_frames(5, h=31, w=45)):
        Image.fromarray(f).save(folder / f"{k:03d}.png")
    reader = VideoReader(folder, fps=5, every=2)
    assert reader.info.name == "frames" and reader.expected_frames == 3
    frames = list(reader)
    assert [(f.index, f.time) for f in frames] == [(0, 0.0), (2, 0.4), (4, 0.8)]
    assert frames[0].image.shape == (31, 45, 3)
    out = tmp_path / "odd.mp4"  # H.264 needs even sizes: padded to 32x46
    _write(out, [f.image for f in frames], fps=2.5)
    info = VideoReader(out).info
    assert (info.height, info.width, info.num_frames) == (32, 46, 3)
    Image.new("RGB", (10, 10)).save(folder / "999.png")  # a frame of another size
    with pytest.raises(VideoDecodeError, match="999.png: frame 5 is 10x10"):
        list(VideoReader(folder))


def test_truncated_video_gives_its_frames_then_an_error(tmp_path):
    path = tmp_path / "full.mp4"
    rng = np.random.default_rng(0)  # noise: every frame is large, so the cut lands mid-stream
    _write(path, [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(10)])
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])  # moov is in front ("faststart")
    reader = VideoReader(cut)
    got = []
    # FFmpeg either fails on the cut packet or ends quietly short of the declared frame count
    with pytest.raises(VideoDecodeError, match="cut.mp4: (the video is broken|ended) after") as e:
        for frame in reader:
            got.append(frame.index)
    assert 0 < len(got) < 10 and e.value.frames_read == len(got)
    garbage = tmp_path / "garbage.mov"
    garbage.write_bytes(b"not a video" * 50)
    with pytest.raises(VideoDecodeError, match="garbage.mov: cannot open as a video"):
        VideoReader(garbage)


def test_stopping_early_ends_the_decoding_thread(tmp_path):
    path = tmp_path / "clip.mp4"
    _write(path, _frames(20))
    reader = VideoReader(path, queue_size=2)
    for frame in reader:
        assert reader._queue.qsize() <= 2  # the decoder never runs far ahead
        if frame.index == 3:
            break
    reader.close()
    assert not reader._thread.is_alive()


def test_webcam_by_index():
    assert webcam_device(2, "linux") == ("/dev/video2", "v4l2")
    assert webcam_device(0, "darwin") == ("0", "avfoundation")
    with pytest.raises(VideoDecodeError, match="Linux and macOS only"):
        webcam_device(0, "win32")
    with pytest.raises(VideoDecodeError, match="webcam 99"):
        VideoReader(99)  # no such camera here: a clear error, not a hang


def test_writer_abort_leaves_no_file(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, fps=5, width=16, height=16) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", [".avi", ".mov", ".mkv"])
def test_other_containers(tmp_path, ext):
    path = tmp_path / f"clip{ext}"
    _write(path, _frames(5))
    with VideoReader(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps) == (64, 48, 10.0)
        assert [f.index for f in reader] == [0, 1, 2, 3, 4]

"""read_image: formats, EXIF orientation, odd modes, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from masktron.data.detection_utils import (
    ImageReadError,
    convert_image_to_rgb,
    get_image_size,
    read_image,
)


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_bgr_rgb_l_formats(tmp_path, rgb):
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(read_image(path, "RGB"), rgb)
    np.testing.assert_array_equal(read_image(str(path), "BGR"), rgb[:, :, ::-1])
    grey = read_image(path, "L")
    assert grey.shape == (12, 20, 1) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[:, :, 0], np.asarray(Image.fromarray(rgb).convert("L")))
    assert read_image(path).shape == (12, 20, 3)  # format None: PIL's own mode


def test_greyscale_rgba_palette_become_rgb(tmp_path, rgb):
    grey = rgb[:, :, 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png", "BGR")
    assert out.shape == (12, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", "RGB"), rgb)  # alpha dropped
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png", "BGR").shape == (12, 20, 3)


def test_16bit_png_scaled_by_its_maximum(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)  # a 12-bit camera image
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    out = read_image(tmp_path / "deep.png", "L")[:, :, 0]
    np.testing.assert_array_equal(out, np.rint(values * 255.0 / 4000).astype(np.uint8))
    bgr = read_image(tmp_path / "deep.png", "BGR")
    np.testing.assert_array_equal(bgr[:, :, 0], out)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), values)  # raw when asked


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(tmp_path, rgb, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rot.png"
    Image.fromarray(rgb).save(path, exif=exif)
    out = read_image(path, "RGB")
    # Orientation 3: rotated 180; 6: needs 90 clockwise; 8: 90 counter-clockwise.
    expected = {3: np.rot90(rgb, 2), 6: np.rot90(rgb, -1), 8: np.rot90(rgb, 1)}[orientation]
    np.testing.assert_array_equal(out, expected)
    assert get_image_size(path) == out.shape[:2]


def test_bad_files_give_clear_errors(tmp_path, rgb):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image(missing, "BGR")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    with pytest.raises(ImageReadError, match="notes.jpg.*not an image"):
        read_image(text, "BGR")
    full = tmp_path / "full.jpg"
    Image.fromarray(rgb).resize((200, 120)).save(full, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:700])
    with pytest.raises(ImageReadError, match="truncated.jpg.*truncated or corrupt"):
        read_image(truncated, "BGR")
    assert isinstance(ImageReadError("x"), OSError)
    with pytest.raises(IsADirectoryError):
        read_image(tmp_path, "BGR")


def test_arrays_and_pil_images_in_memory(rgb):
    np.testing.assert_array_equal(read_image(rgb, "BGR"), rgb)  # taken as already BGR
    assert read_image(rgb[:, :, 0], "RGB").shape == (12, 20, 3)
    assert read_image(np.dstack([rgb, rgb[:, :, :1]]), "RGB").shape == (12, 20, 3)
    np.testing.assert_array_equal(read_image(Image.fromarray(rgb), "BGR"), rgb[:, :, ::-1])
    with pytest.raises(TypeError):
        read_image(3, "BGR")


def test_real_dsb2018_rgba_and_coco_jpeg(shared_data):
    png = next((shared_data / "dsb2018" / "images").glob("*.png"))
    with Image.open(png) as im:
        assert im.mode == "RGBA"
        rgb = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(png, "BGR"), rgb[:, :, ::-1])
    jpg = next((shared_data / "coco_sample" / "images" / "val2017").glob("*.jpg"))
    out = read_image(jpg, "BGR")
    assert out.dtype == np.uint8 and out.shape[2] == 3
    assert get_image_size(jpg) == out.shape[:2]


def test_convert_image_to_rgb(rgb):
    np.testing.assert_array_equal(convert_image_to_rgb(rgb[:, :, ::-1], "BGR"), rgb)
    np.testing.assert_array_equal(convert_image_to_rgb(rgb, "RGB"), rgb)
    grey = convert_image_to_rgb(rgb[:, :, :1], "L")
    assert grey.shape == (12, 20, 3) and (grey == rgb[:, :, :1]).all()

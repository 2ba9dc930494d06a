"""`masktron predict`: one bad file costs only itself; huge images are refused or drawn small."""

import json
import struct
import zlib

import pytest
import torch
from PIL import Image

from masktron.cli.failures import FailureLog
from masktron.cli.main import main
from masktron.cli.predict import predict_images
from masktron.data import read_image
from masktron.data.image_io import ImageTooLargeError, max_image_pixels, set_max_image_pixels
from masktron.structures import Boxes, Instances

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
FAST = ["--opts", "INPUT.MIN_SIZE_TEST", "256", "INPUT.MAX_SIZE_TEST", "400"]


def png_header_only(path, width: int, height: int) -> None:
    """A PNG that claims width x height pixels in ~60 bytes (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))


@pytest.fixture
def restore_pixel_limit():
    limit = max_image_pixels()
    yield
    set_max_image_pixels(limit)


def test_decompression_bomb_is_refused_from_its_header(tmp_path, restore_pixel_limit):
    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 20000, 20000)
    with pytest.raises(ImageTooLargeError) as err:
        read_image(bomb, format="BGR")
    assert "bomb.png: 20000 x 20000 = 400,000,000 pixels" in str(err.value)
    assert "--max-pixels" in str(err.value)
    set_max_image_pixels(100)
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(small)
    with pytest.raises(ImageTooLargeError, match="limit of 100"):
        read_image(small)
    set_max_image_pixels(0)  # no limit: PIL's own check is lifted too
    with pytest.raises(OSError) as err:  # the header is fine, the pixel data is not
        read_image(bomb)
    assert not isinstance(err.value, ImageTooLargeError)


class _FakePredictor:
    """Detects one box at the right end of every image; fails on images 7 pixels tall."""

    def __call__(self, bgr):
        h, w = bgr.shape[:2]
        if h == 7:
            raise RuntimeError("simulated failure deep inside the model")
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor([[w - 50.0, 0.0, w - 1.0, h - 1.0]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_classes = torch.tensor([0])
        return {"instances": inst}


def test_one_failing_image_costs_only_itself(tmp_path, restore_pixel_limit):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (30, 20)).save(folder / "a.png")
    png_header_only(folder / "b_bomb.png", 20000, 20000)
    (folder / "c_garbage.jpg").write_bytes(b"GIF89a but not really")
    Image.new("RGB", (30, 7)).save(folder / "d_fails.png")
    Image.new("RGB", (40, 20)).save(folder / "e.png")
    out = tmp_path / "out"
    paths = sorted(str(p) for p in folder.iterdir())
    lines = []

    class Lines:
        def write(self, text):
            lines.append(text)

    failures = FailureLog(str(out), what="image", stream=Lines())
    done, messages = predict_images(_FakePredictor(), None, paths, str(out), failures=failures)
    assert done == 2 and len(messages) == 3
    assert failures.finish() == 1
    failed = json.loads((out / "failed.json").read_text())
    assert [f["file"] for f in failed] == paths[1:4]
    assert "20000 x 20000" in failed[0]["reason"] and failed[0]["error"] == "ImageTooLargeError"
    assert failed[2] == {
        "file": paths[3],
        "reason": "simulated failure deep inside the model",
        "error": "RuntimeError",
    }
    printed = [ln for ln in "".join(lines).splitlines() if ln.strip()]
    assert printed[:3] == [f"{f['file']}: {f['reason']}" for f in failed]
    assert printed[3] == f"masktron: 3 of 5 image(s) failed (listed in {out}/failed.json)"
    results = json.loads((out / "results.json").read_text())
    assert [r["file_name"] for r in results] == ["a.png", "e.png"]  # nothing of the failed ones
    assert (out / "a.png").exists() and (out / "e.png").exists()
    assert not (out / "d_fails.png").exists()


def test_drawing_of_a_huge_image_is_downscaled_results_stay_in_original_pixels(tmp_path):
    photo = tmp_path / "wide.png"
    Image.new("RGB", (5000, 300), (90, 120, 30)).save(photo)
    out = tmp_path / "out"
    predict_images(_FakePredictor(), None, [str(photo)], str(out), max_draw_size=1000)
    assert Image.open(out / "wide.png").size == (1000, 60)
    (result,) = json.loads((out / "results.json").read_text())
    assert result["bbox"] == pytest.approx([4950.0, 0.0, 49.0, 299.0])


def test_thin_image_with_a_mask_is_drawn_downscaled(tmp_path):
    class MaskPredictor(_FakePredictor):
        def __call__(self, bgr):
            outputs = super().__call__(bgr)
            outputs["instances"].pred_masks = torch.ones((1, *bgr.shape[:2]), dtype=torch.bool)
            return outputs

    photo = tmp_path / "thin.png"
    Image.new("RGB", (20000, 2), (200, 10, 10)).save(photo)
    out = tmp_path / "out"
    done, failed = predict_images(MaskPredictor(), None, [str(photo)], str(out), max_draw_size=4096)
    assert (done, failed) == (1, [])
    assert Image.open(out / "thin.png").size == (4096, 1)


def test_all_good_writes_an_empty_failed_json_and_exits_0(tmp_path):
    failures = FailureLog(str(tmp_path), what="image")
    assert failures.attempt("x.png", lambda: 3) == 3
    assert failures.finish() == 0
    assert json.loads((tmp_path / "failed.json").read_text()) == []


@pytest.mark.parametrize("conf", ["nan", "-0.1", "1.5", "inf"])
def test_conf_outside_0_1_is_a_usage_error(conf, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", "x.jpg", "--config", CONFIG, "--out", "o", "--conf", conf])
    assert e.value.code == 2 and "not a number in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_mixed_folder_bomb_thin_and_garbage(mask_rcnn_zoo_pkl, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    png_header_only(folder / "b.png", 20000, 20000)
    Image.new("RGB", (20000, 2), (200, 10, 10)).save(folder / "c_thin.png")
    (folder / "d.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    args = ["predict", str(folder), "--config", CONFIG, "--weights", str(mask_rcnn_zoo_pkl)]
    assert main([*args, "--out", str(out), "--device", "cpu", *FAST]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'b.png'}: 20000 x 20000 = 400,000,000 pixels" in err
    assert f"{folder / 'd.jpg'}: not an image file" in err
    assert "2 of 3 image(s) failed" in err and "Traceback" not in err
    failed = json.loads((out / "failed.json").read_text())
    assert [f["file"] for f in failed] == [str(folder / "b.png"), str(folder / "d.jpg")]
    assert Image.open(out / "c_thin.png").size == (4096, 1)  # drawn at --max-draw-size
    assert (out / "results.json").exists()

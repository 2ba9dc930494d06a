"""`masktron sam`: prompts and --auto write mask PNGs, COCO-RLE JSON and an overlay; exit codes.

Most tests swap ViT-B for a tiny random SAM (same checkpoint format, same code paths) so that
they run in seconds; one slow test runs the real ViT-B fixture weights end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from fixtures_util_sam import fixture_checkpoint, fixture_predictor, load_rgb, tiny_sam
from PIL import Image

from masktron.cli.main import main
from masktron.data.image_io import max_image_pixels, set_max_image_pixels
from masktron.models.sam import build as sam_build


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam(0).state_dict(), path)
    monkeypatch.setitem(sam_build.sam_model_registry, "vit_b", lambda: tiny_sam(1))
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(load_rgb("astronaut")[100:160, 200:280]).save(path)  # 60 x 80
    return path


def _run(photo, checkpoint, out, *extra):
    args = ["sam", str(photo), "--checkpoint", str(checkpoint), "--model", "vit_b"]
    return main([*args, "--out", str(out), "--device", "cpu", *extra])


def _outputs(out):
    summary = json.loads((out / "photo_masks.json").read_text())
    pngs = sorted((out / "photo_masks").glob("*.png"))
    return summary, [np.asarray(Image.open(p)) > 0 for p in pngs]


def test_points_write_masks_json_and_overlay(tiny_checkpoint, photo, tmp_path):
    out = tmp_path / "out"
    assert _run(photo, tiny_checkpoint, out, "--point", "10,20", "--point", "40.5,30,0") == 0
    summary, masks = _outputs(out)
    assert summary["mode"] == "prompts" and (summary["height"], summary["width"]) == (60, 80)
    assert summary["prompts"]["point_coords"] == [[10, 20], [40.5, 30]]
    assert summary["prompts"]["point_labels"] == [1, 0]
    assert len(masks) == len(summary["masks"]) == 1  # two points: one unambiguous mask
    entry = summary["masks"][0]
    decoded = mask_utils.decode(entry["segmentation"]).astype(bool)
    np.testing.assert_array_equal(decoded, masks[0])
    assert entry["area"] == masks[0].sum() and entry["file"] == "photo_masks/000.png"
    assert isinstance(entry["predicted_iou"], float)
    overlay = np.asarray(Image.open(out / "photo_overlay.png"))
    assert overlay.shape == (60, 80, 3)
    assert not np.array_equal(overlay, np.asarray(Image.open(photo)))


def test_one_point_best_mask_or_all_three(tiny_checkpoint, photo, tmp_path):
    assert _run(photo, tiny_checkpoint, tmp_path / "a", "--point", "30,30") == 0
    summary, masks = _outputs(tmp_path / "a")
    assert len(masks) == 1
    assert _run(photo, tiny_checkpoint, tmp_path / "a", "--point", "30,30", "--multimask") == 0
    summary3, masks3 = _outputs(tmp_path / "a")
    assert len(masks3) == 3
    ious = [m["predicted_iou"] for m in summary3["masks"]]
    assert summary["masks"][0]["predicted_iou"] == pytest.approx(max(ious))
    # a rerun with fewer masks leaves no stale PNGs behind
    assert _run(photo, tiny_checkpoint, tmp_path / "a", "--point", "30,30") == 0
    assert len(_outputs(tmp_path / "a")[1]) == 1


def test_several_boxes_one_mask_each(tiny_checkpoint, photo, tmp_path):
    out = tmp_path / "out"
    code = _run(photo, tiny_checkpoint, out, "--box", "0,0,40,30", "--box", "20,10,79,59")
    assert code == 0
    summary, masks = _outputs(out)
    assert len(masks) == 2 and [m["box"] for m in summary["masks"]] == [
        [0, 0, 40, 30],
        [20, 10, 79, 59],
    ]


def test_auto_with_progress_bar(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    extra = [
        "--auto",
        "--points-per-side",
        "3",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
    ]
    assert _run(photo, tiny_checkpoint, out, *extra) == 0
    captured = capsys.readouterr()
    assert "SAM masks" in captured.err  # tqdm's bar
    summary, masks = _outputs(out)
    assert summary["mode"] == "auto" and len(masks) == len(summary["masks"]) > 0
    entry = summary["masks"][0]
    assert {"predicted_iou", "stability_score", "point_coords", "crop_box", "bbox"} <= set(entry)


@pytest.mark.parametrize(
    "extra",
    [[], ["--auto", "--point", "1,1"], ["--point", "1"], ["--point", "1,2,3"], ["--box", "1,2,3"]],
)
def test_bad_arguments_exit_2(tiny_checkpoint, photo, tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as err:
        _run(photo, tiny_checkpoint, tmp_path / "out", *extra)
    assert err.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--point", "85,10"], "lies outside the image"),
        (["--box", "30,10,20,40"], "x0 <= x1"),
        (["--box", "0,0,1,1", "--box", "0,0,2,2", "--point", "1,1"], None),
    ],
)
def test_bad_prompts_exit_1(tiny_checkpoint, photo, tmp_path, extra, message, capsys):
    if message is None:  # points with several boxes: an argument error
        with pytest.raises(SystemExit):
            _run(photo, tiny_checkpoint, tmp_path / "out", *extra)
        return
    assert _run(photo, tiny_checkpoint, tmp_path / "out", *extra) == 1
    err = capsys.readouterr().err
    assert "masktron sam: error:" in err and message in err


def test_bad_files_exit_1(tiny_checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(photo, tmp_path / "missing.pth", out, "--point", "1,1") == 1
    assert "missing.pth" in capsys.readouterr().err
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage" * 50)
    assert _run(photo, junk, out, "--point", "1,1") == 1
    assert "junk.pth: not a readable weights-only PyTorch checkpoint" in capsys.readouterr().err
    assert _run(tmp_path / "nope.png", tiny_checkpoint, out, "--point", "1,1") == 1
    assert "nope.png" in capsys.readouterr().err
    args = ["sam", str(photo), "--checkpoint", str(tiny_checkpoint), "--point", "1,1"]
    assert main([*args, "--out", str(out)]) == 1  # width 32 is no released variant
    assert "cannot tell the SAM variant; pass --model" in capsys.readouterr().err


@pytest.mark.slow
def test_vit_b_end_to_end_with_inferred_variant(tmp_path):
    image = load_rgb("coffee")
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "out"
    args = ["sam", str(path), "--checkpoint", str(fixture_checkpoint()), "--box", "120,100,480,360"]
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 0
    _, masks = _outputs(out)
    predictor = fixture_predictor()
    predictor.set_image(image)
    want, _, _ = predictor.predict(box=np.array([120, 100, 480, 360]), multimask_output=False)
    assert (masks[0] != want[0]).mean() < 1e-4


_AUTO_FAST = ["--auto", "--points-per-side", "3", "--pred-iou-thresh", "0"]


@pytest.fixture
def restore_pixel_limit():
    limit = max_image_pixels()
    yield
    set_max_image_pixels(limit)


@pytest.mark.parametrize(
    "mode", [[*_AUTO_FAST, "--stability-score-thresh", "0"], ["--point", "30,20"]]
)
def test_folder_one_bad_image_costs_only_itself(
    tiny_checkpoint, photo, tmp_path, mode, capsys, restore_pixel_limit
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.png").write_bytes(photo.read_bytes())  # 60 x 80
    data = photo.read_bytes()
    (folder / "b_cut.png").write_bytes(data[: len(data) // 2])  # a truncated PNG
    Image.new("RGB", (100, 90)).save(folder / "c_big.png")  # 9,000 pixels > --max-pixels
    (folder / "d_good.png").write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    limits = ["--max-pixels", "5000", "--max-draw-size", "40"]
    assert _run(folder, tiny_checkpoint, out, *mode, *limits) == 1
    failed = json.loads((out / "failed.json").read_text())
    assert [f["file"] for f in failed] == [str(folder / "b_cut.png"), str(folder / "c_big.png")]
    assert "100 x 90 = 9,000 pixels, more than the limit of 5,000" in failed[1]["reason"]
    assert failed[1]["error"] == "ImageTooLargeError"
    err = capsys.readouterr().err
    assert f"{folder / 'b_cut.png'}: " in err and f"{folder / 'c_big.png'}: 100 x 90" in err
    assert f"masktron: 2 of 4 image(s) failed (listed in {out}/failed.json)" in err
    for stem in ("a_good", "d_good"):  # the good images before and after are written
        summary = json.loads((out / f"{stem}_masks.json").read_text())
        assert (summary["height"], summary["width"]) == (60, 80) and summary["masks"]
        assert Image.open(out / f"{stem}_overlay.png").size == (40, 30)  # drawing downscaled
        assert Image.open(out / f"{stem}_masks" / "000.png").size == (80, 60)  # masks are not
    assert not list(out.glob("b_cut*")) and not list(out.glob("c_big*"))
    (folder / "b_cut.png").unlink()
    (folder / "c_big.png").unlink()
    Image.open(photo).save(folder / "a_good.jpg")  # same stem as a_good.png: a_good_1_*
    assert _run(folder, tiny_checkpoint, out, *mode) == 0  # all good: exit 0, empty list
    assert json.loads((out / "failed.json").read_text()) == []
    summary = json.loads((out / "a_good_1_masks.json").read_text())
    assert summary["image"] == str(folder / "a_good.png")

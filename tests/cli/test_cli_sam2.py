"""`masktron sam2` on images: prompts and --auto write mask PNGs, COCO-RLE JSON and an overlay
equal to Meta's outputs on the SAM 2.1 tiny fixture checkpoint; argument errors exit 2."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from fixtures_util_sam import mask_iou
from PIL import Image
from sam2_fixtures_util import sam2_fixture_checkpoint
from sam2_image_util import (
    TINY,
    fixture_predictor,
    fixture_sam2,
    load_rgb,
    reference,
    unpack_masks,
)

from masktron.cli import sam2 as cli_sam2
from masktron.cli.main import main
from masktron.predictors import sam2_image
from masktron.predictors.sam2_auto_mask import SAM2AutomaticMaskGenerator


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("sam2_cli") / "astronaut.png"
    Image.fromarray(load_rgb("astronaut")).save(path)
    return path


def _outputs(out, stem="astronaut"):
    summary = json.loads((out / f"{stem}_masks.json").read_text())
    pngs = sorted((out / f"{stem}_masks").glob("*.png"))
    return summary, [np.asarray(Image.open(p)) > 0 for p in pngs]


def test_points_from_checkpoint_match_meta(astronaut_png, tmp_path):
    """The real path: variant read from the checkpoint, one image encoded, Meta's mask."""
    out = tmp_path / "out"
    args = ["sam2", str(astronaut_png), "--checkpoint", str(sam2_fixture_checkpoint(TINY))]
    # point2neg of the SAM fixtures on the 512 x 512 photo
    prompts = ["--point", "153.6,204.8", "--point", "358.4,307.2,0"]
    assert main([*args, *prompts, "--out", str(out), "--device", "cpu"]) == 0
    summary, masks = _outputs(out)
    assert summary["mode"] == "prompts" and (summary["height"], summary["width"]) == (512, 512)
    assert summary["prompts"]["point_labels"] == [1, 0]
    assert len(masks) == len(summary["masks"]) == 1  # two points: one unambiguous mask
    key = f"{TINY}/astronaut/point2neg/mm0"
    assert mask_iou(masks[0], unpack_masks(key)[0]) >= 0.99
    entry = summary["masks"][0]
    assert abs(entry["predicted_iou"] - reference()[f"{key}/iou_predictions"][0]) <= 2e-3
    np.testing.assert_array_equal(mask_utils.decode(entry["segmentation"]).astype(bool), masks[0])
    assert (out / "astronaut_overlay.png").is_file()


@pytest.fixture
def shared_model(monkeypatch):
    """The session's fixture model and cached predictor instead of a fresh build and encode."""
    monkeypatch.setattr(cli_sam2, "load_model", lambda args, video=False: fixture_sam2(TINY))
    monkeypatch.setattr(sam2_image, "SAM2ImagePredictor", lambda model: fixture_predictor(TINY))


def test_auto_writes_the_generators_masks(shared_model, astronaut_png, tmp_path):
    out = tmp_path / "out"
    opened = ["--pred-iou-thresh", "-1e9", "--stability-score-thresh", "0", "--box-nms-thresh", "1"]
    extra = ["--auto", "--points-per-side", "1", *opened]
    assert (
        main(["sam2", str(astronaut_png), "--checkpoint", "x.pt", "--out", str(out), *extra]) == 0
    )
    summary, masks = _outputs(out)
    assert summary["mode"] == "auto" and len(masks) == len(summary["masks"]) == 3
    generator = SAM2AutomaticMaskGenerator(
        fixture_predictor(TINY),
        points_per_side=1,
        pred_iou_thresh=-1e9,
        stability_score_thresh=0,
        box_nms_thresh=1,
    )
    records = generator.generate(load_rgb("astronaut"))
    for entry, mask, record in zip(summary["masks"], masks, records, strict=True):
        # The CLI encodes the image; the generator gets the cached embedding: the same bits
        np.testing.assert_array_equal(mask, record["segmentation"])
        assert entry["area"] == record["area"]
        assert entry["bbox"] == record["bbox"]
        assert entry["predicted_iou"] == record["predicted_iou"]
        assert entry["point_coords"] == record["point_coords"] == [[256.0, 256.0]]


def test_several_boxes_one_mask_each(shared_model, astronaut_png, tmp_path):
    out = tmp_path / "out"
    boxes = ["--box", "102.4,128,409.6,460.8", "--box", "10,20,200,300"]
    assert (
        main(["sam2", str(astronaut_png), "--checkpoint", "x.pt", "--out", str(out), *boxes]) == 0
    )
    summary, masks = _outputs(out)
    assert [e["box"] for e in summary["masks"]] == [[102.4, 128, 409.6, 460.8], [10, 20, 200, 300]]
    assert mask_iou(masks[0], unpack_masks(f"{TINY}/astronaut/box/mm0")[0]) >= 0.99


@pytest.mark.parametrize(
    "extra",
    [
        [],  # no prompt
        ["--auto", "--point", "1,2"],
        ["--point", "1,2@3"],  # a frame on an image
        ["--box", "1,2,3,4", "--box", "5,6,7,8", "--point", "1,2"],
        ["--point", "1,2,3,4"],
        ["--box", "1,2,3,4@x"],
    ],
)
def test_bad_arguments_exit_2(astronaut_png, tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sam2", str(astronaut_png), "--checkpoint", "x.pt", "--out", str(tmp_path), *extra])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_frame_prompts_parse_for_videos():
    assert cli_sam2.parse_point("-10,20.5,0@7") == (-10.0, 20.5, 0, 7)
    assert cli_sam2.parse_point("3,4") == (3.0, 4.0, 1, 0)
    assert cli_sam2.parse_box("1,2,3,4@12") == (1.0, 2.0, 3.0, 4.0, 12)


def test_bad_files_exit_1(astronaut_png, tmp_path, capsys):
    missing = tmp_path / "missing.png"
    code = main(["sam2", str(missing), "--checkpoint", "x.pt", "--out", str(tmp_path), "--auto"])
    assert code == 1 and "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code = main(
        ["sam2", str(astronaut_png), "--checkpoint", str(bad), "--out", str(tmp_path), "--auto"]
    )
    assert code == 1 and "bad.pt" in capsys.readouterr().err

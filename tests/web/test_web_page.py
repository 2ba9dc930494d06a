"""The real page in headless Chromium (Debian's package, driven by Playwright's Python API):
label two photos with clicks and a box, check the saved COCO JSON against SAM's Python API,
then train a tiny Mask R-CNN on it. The server is `masktron serve` in its own process, on
127.0.0.1 only, with a tiny random SAM and a tiny random detector (the UI flow is what is
tested, not the models). Set MASKTRON_WEB_SCREENSHOTS=1 to refresh docs/images/web_*.jpg.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from masktron.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_cli_train import restore_logging_and_threads  # noqa: E402, F401 (a fixture)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (the test extra) is missing"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.isfile(CHROMIUM):
    pytest.skip(
        "no browser: Debian's chromium is not installed (apt-get install chromium)",
        allow_module_level=True,
    )
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
STARTUP_SECONDS = 180  # the server imports torch and loads the models; bounded wait
# Prompts in image pixels: chelsea.png is 451x300 (the cat), coffee.png 600x400 (the cup).
CAT_POINT, CAT_NEGATIVE = (230.0, 150.0), (60.0, 40.0)
CUP_BOX, CUP_NEGATIVE = (120.0, 40.0, 480.0, 330.0), (300.0, 60.0)


@pytest.fixture
def server(image_dir, sam_checkpoint, detector_files, tmp_path):
    """`masktron serve` on a free loopback port; yields (url, annotations path)."""
    config, weights = detector_files
    labels = tmp_path / "labels.json"
    command = [sys.executable, "-m", "masktron", "serve", "--images", str(image_dir),
               "--checkpoint", str(sam_checkpoint), "--annotations", str(labels), "--port", "0",
               "--device", "cpu", "--points-per-side", "2", "--pred-iou-thresh", "0",
               "--stability-score-thresh", "0", "--config", str(config), "--weights",
               str(weights), "--conf", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert process.stdout is not None
    url, output, deadline = None, b"", time.monotonic() + STARTUP_SECONDS
    while url is None and time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 1.0)[0]:
            output += process.stdout.readline()
            if b"open http://" in output:
                url = output.split(b"open ")[1].split()[0].decode()
    try:
        assert url is not None, f"the server did not start:\n{output.decode(errors='replace')}"
        assert url.startswith("http://127.0.0.1:")
        yield url, labels
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def screenshot(page, name: str, tmp_path: Path) -> None:
    """A PNG in tmp_path; with MASKTRON_WEB_SCREENSHOTS set, also docs/images/<name>.jpg."""
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    if os.environ.get("MASKTRON_WEB_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"{name}.jpg"), type="jpeg", quality=85)


def page_xy(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) on the displayed photo."""
    box = page.locator("#overlay").bounding_box()
    image = page.evaluate("() => window.masktron.images[window.masktron.index]")
    return box["x"] + x * box["width"] / image["width"], box["y"] + y * box["height"] / image[
        "height"
    ]


def wait_ready(page, name: str) -> None:
    page.wait_for_function(
        "name => document.body.dataset.state === 'ready' && "
        "window.masktron.images[window.masktron.index].name === name",
        arg=name,
        timeout=60_000,
    )


def wait_decoded(page, count: int) -> None:
    page.wait_for_function(f"() => window.masktron.decoded >= {count}")


def overlay_pixels(page) -> int:
    """Pixels of the overlay canvas that are painted (not transparent)."""
    return page.evaluate(
        """() => { const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"""
    )


def mask_area(page) -> int:
    return page.evaluate(
        "() => window.masktron.mask.runs.filter((_, k) => k % 2).reduce((a, b) => a + b, 0)"
    )


def object_count(page) -> int:
    return page.locator("#objects li").count()


def choose_class(page, name: str) -> None:
    page.locator("#classes label", has_text=name).click()


@pytest.mark.slow
@pytest.mark.usefixtures("restore_logging_and_threads")  # `masktron train` sets both
def test_label_in_the_browser_then_train(server, image_dir, sam_checkpoint, tmp_path):
    url, labels = server
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 720},
        )
        context.set_default_timeout(60_000)
        page = context.new_page()
        try:
            label_two_photos(page, url, tmp_path)
        except Exception as e:  # say what the page said
            status = page.locator("#status").text_content()
            raise AssertionError(f"{e}\npage status: {status!r}") from e
        finally:
            context.close()
    saved = json.loads(labels.read_text())
    check_against_python_api(saved, image_dir, sam_checkpoint)
    train_five_iterations(labels, image_dir, len(saved["categories"]), tmp_path)


def label_two_photos(page, url: str, tmp_path: Path) -> None:
    page.goto(url)
    wait_ready(page, "chelsea.png")
    assert page.locator("#thumbnails figure").count() == 3
    assert page.evaluate("() => document.getElementById('progress').hidden")  # embedding done
    for count, name in enumerate(("cat", "cupp", "spare"), 1):
        page.fill("#new-class", name)
        page.press("#new-class", "Enter")
        page.wait_for_function(f"() => window.masktron.categories.length === {count}")
    page.click("#delete-class")  # the chosen class: the one just added
    page.wait_for_function("() => window.masktron.categories.length === 2")
    choose_class(page, "cupp")
    page.on("dialog", lambda dialog: dialog.accept("cup"))  # rename "cupp" -> "cup"
    page.click("#rename-class")
    page.wait_for_function("() => window.masktron.categories[1].name === 'cup'")
    # The cat: a point on it (left click) and one off it (right click); the mask shows.
    choose_class(page, "cat")
    page.mouse.click(*page_xy(page, *CAT_POINT))
    wait_decoded(page, 1)
    assert 0 < mask_area(page) <= overlay_pixels(page)
    page.mouse.click(*page_xy(page, *CAT_NEGATIVE), button="right")
    wait_decoded(page, 2)
    assert page.evaluate("() => window.masktron.points.map(p => p[2])") == [1, 0]
    screenshot(page, "web_click", tmp_path)
    page.keyboard.press("Enter")  # accept
    page.wait_for_function("() => window.masktron.objects.length === 1")
    # The cup on the next photo: a dragged box, a stray point undone, a shift-click off it.
    page.click("#next")
    wait_ready(page, "coffee.png")
    choose_class(page, "cup")
    x0, y0 = page_xy(page, *CUP_BOX[:2])
    x1, y1 = page_xy(page, *CUP_BOX[2:])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
    page.mouse.move(x1, y1, steps=3)
    page.mouse.up()
    wait_decoded(page, 3)
    box = page.evaluate("() => window.masktron.box")
    assert box == pytest.approx(list(CUP_BOX), abs=1.5)
    page.mouse.click(*page_xy(page, 50, 50))
    wait_decoded(page, 4)
    page.click("#undo")  # removes that point, decodes the box alone again
    wait_decoded(page, 5)
    assert page.evaluate("() => window.masktron.points.length") == 0
    page.keyboard.down("Shift")
    page.mouse.click(*page_xy(page, *CUP_NEGATIVE))
    page.keyboard.up("Shift")
    wait_decoded(page, 6)
    screenshot(page, "web_box", tmp_path)
    page.click("#accept")
    page.wait_for_function("() => window.masktron.objects.length === 1")
    page.click("#objects li button:has-text('edit')")  # its prompt comes back to be fixed
    wait_decoded(page, 7)
    assert page.evaluate("() => window.masktron.box") == pytest.approx(box)
    page.keyboard.press("Escape")  # leave it as it was
    assert page.evaluate("() => window.masktron.replace") is None
    # An image added from the page goes into the folder and the thumbnails.
    upload = tmp_path / "uploaded.png"
    upload.write_bytes((tmp_path / "images" / "coins.png").read_bytes())
    page.set_input_files("#upload", str(upload))
    wait_ready(page, "uploaded.png")
    assert (tmp_path / "images" / "uploaded.png").read_bytes() == upload.read_bytes()
    # The greyscale coins, opened from its thumbnail: detect, delete, undo; segment everything.
    page.click("#thumbnails figure[data-name='coins.png']")
    wait_ready(page, "coins.png")
    page.click("#detect")
    page.wait_for_function("() => window.masktron.objects.length > 1")
    detected = object_count(page)
    page.locator("#objects li button.delete").first.click()
    page.wait_for_function(f"() => window.masktron.objects.length === {detected - 1}")
    page.keyboard.press("z")  # undo the delete
    page.wait_for_function(f"() => window.masktron.objects.length === {detected}")
    page.keyboard.press("z")  # undo the detections
    page.wait_for_function("() => window.masktron.objects.length === 0")
    choose_class(page, "cat")
    page.click("#segment-everything")
    page.wait_for_function("() => window.masktron.objects.length > 0")
    screenshot(page, "web_everything", tmp_path)
    page.click("#undo")
    page.wait_for_function("() => window.masktron.objects.length === 0")
    page.click("#prev")
    wait_ready(page, "coffee.png")
    page.click("#save")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('saved 2 objects')"
    )
    captions = page.locator("#thumbnails figcaption").all_text_contents()
    assert captions == ["chelsea.png (1)", "coffee.png (1)", "coins.png (0)", "uploaded.png (0)"]


def check_against_python_api(saved: dict, image_dir: Path, checkpoint: Path) -> None:
    """Each saved mask equals SAM's mask for the same prompts through the Python API."""
    from masktron.data import read_image
    from masktron.predictors.sam_predictor import SamPredictor
    from masktron.web.models import load_sam
    from masktron.web.store import decode_mask

    names = {c["id"]: c["name"] for c in saved["categories"]}
    files = {i["id"]: i["file_name"] for i in saved["images"]}
    sizes = {i["id"]: (i["height"], i["width"]) for i in saved["images"]}
    anns = saved["annotations"]
    assert [(files[a["image_id"]], names[a["category_id"]]) for a in anns] == [
        ("chelsea.png", "cat"),
        ("coffee.png", "cup"),
    ]
    cat, cup = (a["masktron_prompt"] for a in anns)
    clicked = [[*CAT_POINT, 1], [*CAT_NEGATIVE, 0]]
    assert np.allclose(cat["points"], clicked, atol=1.0) and cat["box"] is None
    assert np.allclose(cup["points"], [[*CUP_NEGATIVE, 0]], atol=1.0)
    assert np.allclose(cup["box"], CUP_BOX, atol=1.5)
    predictor = SamPredictor(load_sam(str(checkpoint), device="cpu"))
    for ann in anns:
        prompt = ann["masktron_prompt"]
        predictor.set_image(read_image(image_dir / files[ann["image_id"]], format="RGB"))
        masks, scores, _ = predictor.predict(
            point_coords=np.array([p[:2] for p in prompt["points"]]),
            point_labels=np.array([p[2] for p in prompt["points"]]),
            box=None if prompt["box"] is None else np.array(prompt["box"]),
            multimask_output=len(prompt["points"]) == 1 and prompt["box"] is None,
        )
        expected = masks[int(np.argmax(scores))]
        got = decode_mask(ann["segmentation"], *sizes[ann["image_id"]])
        assert expected.any()
        iou = np.logical_and(got, expected).sum() / np.logical_or(got, expected).sum()
        assert iou == 1.0
        assert ann["area"] == expected.sum() and ann["iscrowd"] == 0


def train_five_iterations(labels: Path, image_dir: Path, classes: int, tmp_path: Path) -> None:
    """`masktron train --coco-dataset` reads the saved file as it is."""
    from engine_helpers import tiny_cfg

    out = tmp_path / "train"
    config = tmp_path / "train.yaml"
    config.write_text(tiny_cfg(out).dump())
    code = main(["train", "--config", str(config), "--coco-dataset", "web_labels",
                 str(labels), str(image_dir), "DATASETS.TRAIN", "('web_labels',)",
                 "MODEL.ROI_HEADS.NUM_CLASSES", str(classes), "INPUT.MASK_FORMAT", "bitmask",
                 "SOLVER.MAX_ITER", "5"])  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines()]
    assert lines[-1]["iteration"] == 4 and np.isfinite(lines[-1]["total_loss"])
    assert (out / "model_final.pth").is_file()

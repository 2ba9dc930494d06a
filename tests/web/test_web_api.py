"""The server's API without a browser: security, uploads, labels saved and reloaded, tools."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra (pip install masktron[web]) is missing")
pytest.importorskip("starlette.testclient", reason="TestClient needs httpx2 (the test extra)")
from starlette.testclient import TestClient  # noqa: E402

from masktron.cli.main import main  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_helpers import make_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_cli_train import restore_logging_and_threads  # noqa: E402, F401 (a fixture)

from masktron.web.store import AnnotationStore, decode_mask, mask_runs  # noqa: E402

H = {"X-Masktron": "1"}


def client_for(app) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture
def client(image_dir, sam_checkpoint, tmp_path):
    return client_for(make_app(image_dir, tmp_path / "labels.json", sam_checkpoint))


def test_only_listed_images_are_readable(client, image_dir, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes((image_dir / "coins.png").read_bytes())
    os.symlink(secret, image_dir / "link.png")  # points outside the folder
    state = client.get("/api/state").json()
    assert [i["name"] for i in state["images"]] == ["chelsea.png", "coffee.png", "coins.png"]
    assert client.get("/api/image/chelsea.png").status_code == 200
    for path in (
        "/api/image/..%2Fsecret.png",
        "/api/image/../secret.png",
        "/api/image/%2Fetc%2Fpasswd",
        f"/api/image/{secret}",
        "/api/image/link.png",
        "/api/thumbnail/..%2F..%2Fetc%2Fpasswd",
        "/api/objects/..%2Fsecret.png",
        "/static/..%2F..%2Fapp.py",
        "/static/../app.py",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"\x89PNG" not in response.content
    bad = client.post("/api/embed", json={"image": "../secret.png"}, headers=H)
    assert bad.status_code == 404


def test_changes_need_the_header_and_a_local_host(client):
    assert client.post("/api/categories", json={"name": "cat"}).status_code == 403
    other = TestClient(client.app, base_url="http://evil.example")
    assert other.get("/api/state").status_code == 400  # DNS rebinding: Host is not local
    form = client.post("/api/categories", content=b"name=cat", headers=H)
    assert form.status_code == 415  # JSON only


def test_uploads_are_size_limited_and_checked(image_dir, sam_checkpoint, tmp_path):
    client = client_for(
        make_app(image_dir, tmp_path / "l.json", sam_checkpoint, max_upload_mb=0.25)
    )
    png = (image_dir / "coins.png").read_bytes()  # 75 kB
    big = png + b"\0" * (300 * 1024)
    response = client.post("/api/upload?name=big.png", content=big, headers=H)
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert not (image_dir / "big.png").exists()

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(40):
            yield b"\0" * 10_000

    response = client.post("/api/upload?name=big2.png", content=chunks(), headers=H)
    assert response.status_code == 413 and not (image_dir / "big2.png").exists()
    huge_json = {"name": "x" * (2 << 20)}
    assert client.post("/api/categories", json=huge_json, headers=H).status_code == 413
    for name, data in (("../up.png", png), ("up.py", png), ("up.png", b"import os"),
                       ("chelsea.png", png)):  # fmt: skip
        response = client.post(f"/api/upload?name={name}", content=data, headers=H)
        assert response.status_code == 400, name
    assert not (tmp_path / "up.png").exists() and not (image_dir / "up.py").exists()
    response = client.post("/api/upload?name=new_coins.png", content=png, headers=H)
    assert response.status_code == 200
    names = [i["name"] for i in client.get("/api/state").json()["images"]]
    assert "new_coins.png" in names and (image_dir / "new_coins.png").read_bytes() == png


def test_labels_are_saved_after_each_change_and_reloaded(image_dir, sam_checkpoint, tmp_path):
    path = tmp_path / "labels.json"
    client = client_for(make_app(image_dir, path, sam_checkpoint))
    cat = client.post("/api/categories", json={"name": "cat"}, headers=H).json()["id"]
    dog = client.post("/api/categories", json={"name": "dog"}, headers=H).json()["id"]
    prompt = {"image": "coins.png", "points": [[100, 120, 1], [300, 50, 0]], "box": None}
    decoded = client.post("/api/decode", json=prompt, headers=H).json()
    accepted = client.post("/api/accept", json={**prompt, "category_id": cat}, headers=H).json()
    assert accepted["mask"] == decoded["mask"]
    saved = json.loads(path.read_text())  # autosaved: no explicit save yet
    assert [a["category_id"] for a in saved["annotations"]] == [cat]
    ann = saved["annotations"][0]
    assert mask_runs(decode_mask(ann["segmentation"], 303, 384)) == decoded["mask"]["runs"]
    assert ann["masktron_prompt"] == {"points": [[100.0, 120.0, 1], [300.0, 50.0, 0]], "box": None}
    box = {"image": "coins.png", "points": [], "box": [20, 30, 200, 250], "category_id": dog}
    second = client.post("/api/accept", json=box, headers=H).json()
    client.patch(f"/api/object/{second['id']}", json={"category_id": cat}, headers=H)
    client.delete(f"/api/object/{accepted['id']}", headers=H)
    assert [o["id"] for o in client.get("/api/objects/coins.png").json()["objects"]] == [
        second["id"]
    ]
    assert client.post("/api/undo", json={"image": "coins.png"}, headers=H).json()["undone"]
    client.patch(f"/api/category/{dog}", json={"name": "coin"}, headers=H)
    assert client.delete(f"/api/category/{cat}", headers=H).status_code == 400  # in use
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []  # atomic writes
    # A new server on the same file shows the same objects, ids and classes.
    again = client_for(make_app(image_dir, path, sam_checkpoint))
    objects = again.get("/api/objects/coins.png").json()["objects"]
    assert [(o["id"], o["category_id"]) for o in objects] == [
        (accepted["id"], cat),
        (second["id"], cat),
    ]
    state = again.get("/api/state").json()
    assert state["categories"] == [{"id": cat, "name": "cat"}, {"id": dog, "name": "coin"}]
    assert {i["name"]: i["objects"] for i in state["images"]}["coins.png"] == 2


def test_embedding_progress_and_replacing_an_object(client):
    assert client.post("/api/embed", json={"image": "chelsea.png"}, headers=H).status_code == 200
    progress = client.get("/api/progress").json()
    assert progress == {"image": "chelsea.png", "done": 3, "total": 3}  # patches + 2 blocks
    cid = client.post("/api/categories", json={"name": "cat"}, headers=H).json()["id"]
    first = {"image": "chelsea.png", "points": [[200, 150, 1]], "box": None, "category_id": cid}
    old = client.post("/api/accept", json=first, headers=H).json()
    fixed = {**first, "points": [[200, 150, 1], [20, 20, 0]], "replace": old["id"]}
    new = client.post("/api/accept", json=fixed, headers=H).json()
    objects = client.get("/api/objects/chelsea.png").json()["objects"]
    assert [o["id"] for o in objects] == [new["id"]] and new["id"] != old["id"]
    assert objects[0]["prompt"]["points"] == [[200.0, 150.0, 1], [20.0, 20.0, 0]]
    missing = client.post("/api/accept", json={**fixed, "replace": 999}, headers=H)
    assert missing.status_code == 400 and "no object 999" in missing.json()["error"]
    client.post("/api/undo", json={"image": "chelsea.png"}, headers=H)  # the replacement
    objects = client.get("/api/objects/chelsea.png").json()["objects"]
    assert [o["id"] for o in objects] == [old["id"]]


def test_polygons_cover_the_mask_and_fill_only_its_holes():
    from scipy import ndimage

    from masktron.web.polygons import mask_to_polygons
    from masktron.web.store import decode_mask

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        got = decode_mask(mask_to_polygons(mask), h, w)
        assert (got >= mask).all() and (got <= ndimage.binary_fill_holes(mask)).all()
    ring = np.zeros((9, 9), dtype=bool)
    ring[2:7, 2:7], ring[4, 4] = True, False  # a square with a one-pixel hole
    assert mask_to_polygons(ring) == [[2.0, 2.0, 7.0, 2.0, 7.0, 7.0, 2.0, 7.0]]


@pytest.mark.usefixtures("restore_logging_and_threads")  # `masktron train` sets both
def test_polygon_format_trains_with_the_default_mask_format(image_dir, sam_checkpoint, tmp_path):
    from engine_helpers import tiny_cfg

    from masktron.data.datasets.coco import load_coco_json

    path = tmp_path / "labels.json"
    client = client_for(make_app(image_dir, path, sam_checkpoint, mask_format="polygon"))
    cid = client.post("/api/categories", json={"name": "coin"}, headers=H).json()["id"]
    prompt = {"image": "coins.png", "points": [], "box": [20, 30, 200, 250]}
    decoded = client.post("/api/decode", json=prompt, headers=H).json()["mask"]
    accepted = client.post("/api/accept", json={**prompt, "category_id": cid}, headers=H).json()
    assert accepted["mask"]["size"] == decoded["size"]
    ann = json.loads(path.read_text())["annotations"][0]
    assert isinstance(ann["segmentation"], list) and len(ann["segmentation"]) >= 1
    records = load_coco_json(str(path), str(image_dir), "web_polygons_test")
    objects = [r for r in records if r["annotations"]]
    assert objects[0]["annotations"][0]["segmentation"] == ann["segmentation"]
    # Training reads such a file with the default config (the random SAM's striped masks would
    # make thousands of polygons: a disk drawn here keeps the run short).
    store = AnnotationStore(str(tmp_path / "disk.json"), [("coins.png", 303, 384)],
                            mask_format="polygon")  # fmt: skip
    yy, xx = np.mgrid[:303, :384]
    disk = (yy - 150) ** 2 + (xx - 190) ** 2 < 60**2
    store.add("coins.png", [disk], [store.category_id("coin")], prompts=[None], scores=[None])
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_cfg(tmp_path / "out").dump())
    assert "MASK_FORMAT: polygon" in config.read_text()
    data = ["--coco-dataset", "web_polygons", store.path, str(image_dir)]
    overrides = [
        "DATASETS.TRAIN",
        "('web_polygons',)",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "1",
    ]
    assert main(["train", "--config", str(config), *data, *overrides]) == 0
    assert (tmp_path / "out" / "model_final.pth").is_file()


def test_bad_prompts_and_bad_files_get_clear_errors(client, image_dir, sam_checkpoint, tmp_path):
    for body, word in (
        ({"image": "coins.png", "points": [[1e6, 2, 1]]}, "outside"),
        ({"image": "coins.png", "points": [[1, 2, 5]]}, "label"),
        ({"image": "coins.png", "box": [5, 5, 1, 1]}, "empty"),
        ({"image": "coins.png"}, "at least one point"),
        ({"image": 3, "points": [[1, 2, 1]]}, "'image'"),
    ):
        response = client.post("/api/decode", json=body, headers=H)
        assert response.status_code in (400, 404) and word in response.json()["error"], body
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [], "annotations": [], "categories": [{"id": "x"}]}')
    with pytest.raises(ValueError, match=r"broken.json: categories\[0\].*'id'"):
        make_app(image_dir, broken, sam_checkpoint)


def test_segment_everything_equals_the_mask_generator(image_dir, sam_checkpoint, tmp_path):
    from masktron.data import read_image
    from masktron.predictors.auto_mask import SamAutomaticMaskGenerator
    from masktron.web.models import load_sam

    options = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    client = client_for(make_app(image_dir, tmp_path / "l.json", sam_checkpoint, **options))
    cid = client.post("/api/categories", json={"name": "thing"}, headers=H).json()["id"]
    body = {"image": "chelsea.png", "category_id": cid}
    added = client.post("/api/segment-everything", json=body, headers=H).json()["added"]
    expected = SamAutomaticMaskGenerator(load_sam(str(sam_checkpoint), device="cpu"), **options)
    records = expected.generate(read_image(image_dir / "chelsea.png", format="RGB"))
    assert added == len(records) > 0
    objects = client.get("/api/objects/chelsea.png").json()["objects"]
    got = [o["mask"]["runs"] for o in objects]
    assert got == [mask_runs(r["segmentation"]) for r in records]


def test_detect_prefills_objects_with_the_detector_classes(image_dir, detector_files, tmp_path):
    from masktron.data import read_image
    from masktron.web.models import Detector

    config, weights = detector_files
    options = {"config": config, "weights": weights, "conf": 0.0}
    client = client_for(make_app(image_dir, tmp_path / "l.json", None, **options))
    assert client.get("/api/state").json()["sam"] is False
    response = client.post("/api/decode", json={"image": "coffee.png", "points": [[1, 1, 1]]},
                           headers=H)  # fmt: skip
    assert response.status_code == 409 and "--checkpoint" in response.json()["error"]
    added = client.post("/api/detect", json={"image": "coffee.png"}, headers=H).json()["added"]
    found = Detector(str(config), weights=str(weights), confidence=0.0, device="cpu")(
        read_image(image_dir / "coffee.png", format="RGB")
    )
    assert added == len(found) > 0
    objects = client.get("/api/objects/coffee.png").json()["objects"]
    names = {c["id"]: c["name"] for c in client.get("/api/state").json()["categories"]}
    assert [names[o["category_id"]] for o in objects] == [d["class_name"] for d in found]
    assert [o["mask"]["runs"] for o in objects] == [mask_runs(d["mask"]) for d in found]
    assert objects[0]["prompt"]["box"] == pytest.approx(found[0]["box"])


def test_serve_command_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--checkpoint", "x.pth", "--host", "0.0.0.0"])
    assert e.value.code == 2 and "--allow-remote" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", "--images", str(tmp_path)])
    assert e.value.code == 2 and "--checkpoint" in capsys.readouterr().err
    assert main(["serve", "--images", str(tmp_path), "--checkpoint", str(tmp_path / "no.pth"),
                 "--port", "0"]) == 1  # fmt: skip
    assert "no.pth: no such file" in capsys.readouterr().err


def test_runs_encode_masks_row_major():
    mask = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    assert mask_runs(mask) == [0, 2, 3, 1]
    assert mask_runs(~mask) == [2, 3, 1]

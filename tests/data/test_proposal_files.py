"""Precomputed proposal files: Detectron2's layout loaded into the dataset dicts, legacy keys,
clear errors for missing images and malformed content, and no code run from a pickle."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from proposal_helpers import make_proposals, write_proposal_file

from masktron.checkpoint import UnsafePickleError
from masktron.checkpoint.download import cache_path
from masktron.data import (
    get_detection_dataset_dicts,
    load_proposals_into_dataset,
)
from masktron.structures import BoxMode


@pytest.fixture
def proposals(coco_train) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    return make_proposals(coco_train[1], seed=0)


def _check_loaded(dicts: list[dict], proposals: dict) -> None:
    """Each dict holds its image's proposals, all of them, by descending logit."""
    for d in dicts:
        boxes, logits = proposals[d["image_id"]]
        order = np.argsort(-logits, kind="stable")
        assert d["proposal_bbox_mode"] == BoxMode.XYXY_ABS
        assert d["proposal_boxes"].shape == (len(boxes), 4)
        np.testing.assert_array_equal(d["proposal_boxes"], boxes[order])
        np.testing.assert_array_equal(d["proposal_objectness_logits"], logits[order])
        assert (np.diff(d["proposal_objectness_logits"]) <= 0).all()


def test_every_image_gets_its_proposals_sorted(coco_train, proposals, tmp_path):
    name, raw = coco_train
    other_split = {999999999: (np.zeros((2, 4), np.float32), np.zeros(2, np.float32))}
    path = write_proposal_file(tmp_path / "p.pkl", {**proposals, **other_split})  # ignored
    everything = get_detection_dataset_dicts(name, filter_empty=False, proposal_files=[path])
    assert len(everything) == len(raw["images"])
    _check_loaded(everything, proposals)
    kept = get_detection_dataset_dicts(name, proposal_files=[str(path)])
    assert 0 < len(kept) < len(everything)  # the empty-image filter still applies
    _check_loaded(kept, proposals)
    counts = sum(len(proposals[d["image_id"]][0]) for d in everything)
    assert sum(len(d["proposal_boxes"]) for d in everything) == counts


def test_detectron1_keys_and_string_ids(coco_train, proposals, tmp_path):
    name, _ = coco_train
    path = write_proposal_file(tmp_path / "d1.pkl", proposals, legacy=True, string_ids=True)
    _check_loaded(get_detection_dataset_dicts(name, proposal_files=[path]), proposals)


def test_bbox_mode_from_the_file(coco_train, proposals, tmp_path):
    name, _ = coco_train
    xywh = {
        k: (BoxMode.convert(b, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS), s)
        for k, (b, s) in proposals.items()
    }
    path = write_proposal_file(tmp_path / "xywh.pkl", xywh, bbox_mode=int(BoxMode.XYWH_ABS))
    dicts = get_detection_dataset_dicts(name, proposal_files=[path])
    assert {d["proposal_bbox_mode"] for d in dicts} == {BoxMode.XYWH_ABS}
    path = write_proposal_file(tmp_path / "rel.pkl", xywh, bbox_mode=int(BoxMode.XYWH_REL))
    with pytest.raises(ValueError, match=r"rel\.pkl.*'bbox_mode'"):
        get_detection_dataset_dicts(name, proposal_files=[path])


def test_missing_image_names_file_and_id(coco_train, proposals, tmp_path):
    name, raw = coco_train
    # An image without annotations: training drops it, but proposals are loaded before the
    # filter (as in Detectron2), so the file must still cover it.
    empty = min({img["id"] for img in raw["images"]} - {a["image_id"] for a in raw["annotations"]})
    path = write_proposal_file(
        tmp_path / "partial.pkl", {k: v for k, v in proposals.items() if k != empty}
    )
    with pytest.raises(ValueError, match=rf"partial\.pkl.*image_id {empty}"):
        get_detection_dataset_dicts(name, proposal_files=[path])


def test_one_file_per_dataset(coco_train, tmp_path):
    name, _ = coco_train
    with pytest.raises(ValueError, match="1 dataset"):
        get_detection_dataset_dicts(name, proposal_files=[])


def _good(proposals: dict) -> dict:
    return {
        "ids": list(proposals),
        "boxes": [b for b, _ in proposals.values()],
        "objectness_logits": [s for _, s in proposals.values()],
    }


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda c: c.pop("boxes"), "'boxes'"),
        (lambda c: c.update(objectness_logits=c["objectness_logits"][:-1]), "differ in length"),
        (
            lambda c: c.update(boxes=[np.zeros((len(s), 5)) for s in c["objectness_logits"]]),
            "'boxes'.*\\(N, 4\\)",
        ),
        (
            lambda c: c.update(objectness_logits=[s[:-1] for s in c["objectness_logits"]]),
            "'objectness_logits'",
        ),
        (lambda c: c.update(ids=7), "'ids'"),
        (lambda c: c.update(boxes=[["a", "b", "c", "d"]] * len(c["ids"])), "'boxes'.*not numbers"),
    ],
    ids=["no-boxes", "lengths", "box-shape", "logit-count", "ids-not-list", "strings"],
)
def test_malformed_file_names_file_and_field(coco_train, proposals, tmp_path, damage, field):
    name, _ = coco_train
    content = _good(proposals)
    damage(content)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=rf"bad\.pkl.*{field}"):
        get_detection_dataset_dicts(name, proposal_files=[path])


def test_file_that_is_not_a_dict(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match=r"list\.pkl.*holds a dict.*got a list"):
        load_proposals_into_dataset([{"image_id": 1}], path)


class _RunsCode:
    """Unpickling this calls `call(*args)`: what a malicious proposal file would do."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("call", [os.system, eval])
def test_pickle_that_would_run_code_is_refused(coco_train, proposals, tmp_path, call):
    name, _ = coco_train
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"
    content = _good(proposals)
    content["boxes"][0] = _RunsCode(call, (command,))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refused"):
        get_detection_dataset_dicts(name, proposal_files=[path])
    assert not marker.exists()


def test_urls_resolve_through_the_download_cache(coco_train, proposals, tmp_path, monkeypatch):
    name, _ = coco_train
    monkeypatch.setenv("MASKTRON_CACHE", str(tmp_path / "cache"))
    url = "detectron2://COCO-Detection/rpn/sample_box_proposals.pkl"
    local = cache_path(url)
    os.makedirs(os.path.dirname(local))
    write_proposal_file(local, proposals)  # as if downloaded before: no network needed
    _check_loaded(get_detection_dataset_dicts(name, proposal_files=[url]), proposals)

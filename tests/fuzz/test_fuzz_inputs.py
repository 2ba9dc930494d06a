"""Fuzzing the inputs users hand us: only our documented errors, never a crash or a hang.

Each test draws a fixed number of examples (`derandomize=True`: the same ones on every run, so
CI is reproducible and fast) and asserts that a bad input raises one of the errors the API
documents (`ValueError` and its subclasses ConfigError, DatasetFormatError, CheckpointError;
`OSError` and its subclass ImageReadError) and nothing else.
"""

from __future__ import annotations

import io
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from masktron.checkpoint import CheckpointError, load_pickle, load_torch
from masktron.config import ConfigError, get_cfg
from masktron.data import read_image
from masktron.data.check import check_dataset
from masktron.data.datasets.coco import load_coco_json
from masktron.evaluation.rle import check_compressed_rles, to_compressed_rle

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e30, -0.0]),
)
junk = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), numbers, st.lists(numbers, max_size=3)
)
polygon = st.lists(numbers, max_size=12)
rle = st.fixed_dictionaries(
    {
        "size": st.one_of(st.just([20, 30]), st.lists(numbers, max_size=3), junk),
        "counts": st.one_of(
            st.text(max_size=20),
            st.lists(st.integers(-5, 700), max_size=6),
            st.binary(max_size=10),
            junk,
        ),
    }
)
annotation = st.fixed_dictionaries(
    {
        "image_id": st.one_of(st.just(1), junk),
        "bbox": st.one_of(st.lists(numbers, min_size=4, max_size=4), junk),
        "category_id": st.one_of(st.sampled_from([1, 2, 7]), junk),
        "iscrowd": st.one_of(st.sampled_from([0, 1]), junk),
    },
    optional={"segmentation": st.one_of(st.lists(polygon, max_size=3), rle, junk), "id": junk},
)
image_record = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just(1), junk),
        "file_name": st.one_of(st.just("a.png"), st.text(max_size=6), junk),
        "height": st.one_of(st.just(20), numbers, junk),
        "width": st.one_of(st.just(30), numbers, junk),
    }
)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_images")
    Image.new("RGB", (30, 20)).save(root / "a.png")
    return root


@FUZZ
@given(
    images=st.lists(image_record, min_size=1, max_size=2),
    annotations=st.lists(annotation, max_size=4),
)
def test_coco_json_fields(image_root, images, annotations):
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = image_root / "fuzz.json"
    path.write_text(json.dumps(data, allow_nan=True))
    try:
        dicts = load_coco_json(path, image_root, "fuzz_coco")
    except ValueError:
        return
    check_dataset(dicts, num_classes=2, progress=False)  # reports, never raises


@FUZZ
@given(
    segmentation=st.one_of(st.lists(polygon, max_size=3), rle, junk),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
)
def test_rle_and_polygons_for_evaluation(segmentation, h, w):
    try:
        to_compressed_rle(segmentation, h, w)
    except ValueError:
        pass


@FUZZ
@given(
    counts=st.one_of(
        st.text(alphabet=st.characters(max_codepoint=127), max_size=30), st.binary(max_size=30)
    )
)
def test_compressed_rle_counts(counts):
    flags = check_compressed_rles([{"size": [20, 30], "counts": counts}], [(20, 30)])
    assert flags.shape == (1,)


def _image_bytes(
    kind: str, size: tuple[int, int], mode: str, cut: float, exif: int | None
) -> bytes:
    image = Image.new(mode, size)
    buffer = io.BytesIO()
    kwargs = {}
    if exif is not None and kind == "JPEG":
        info = Image.Exif()
        info[0x0112] = exif  # orientation, valid or not
        kwargs["exif"] = info.tobytes()
    image.save(buffer, format=kind, **kwargs)
    raw = buffer.getvalue()
    return raw[: max(1, int(len(raw) * cut))]


@FUZZ
@given(
    kind=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF"]),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    mode=st.sampled_from(["RGB", "L", "1", "I;16", "RGBA", "P", "CMYK"]),
    cut=st.sampled_from([1.0, 0.9, 0.5, 0.1]),
    exif=st.one_of(st.none(), st.integers(-3, 12)),
    noise=st.binary(max_size=16),
    fmt=st.sampled_from(["BGR", "RGB", "L", None]),
)
def test_image_bytes(tmp_path_factory, kind, size, mode, cut, exif, noise, fmt):
    try:
        raw = _image_bytes(kind, size, mode, cut, exif)
    except (OSError, ValueError, KeyError):
        return  # PIL cannot write this mode in this format
    path = tmp_path_factory.getbasetemp() / "fuzz_image"
    path.write_bytes(raw + noise if cut == 1.0 else raw)
    try:
        array = read_image(path, format=fmt)
    except (OSError, ValueError):
        return
    assert array.ndim in (2, 3) and array.shape[0] > 0


yaml_values = st.one_of(
    st.text(max_size=12),
    numbers.map(lambda v: repr(v)),
    st.sampled_from(
        ["[1, 2", "{a: }", "&a [*a]", "!!python/object/apply:os.system ['true']", "- - -", "~"]
    ),
)


@pytest.fixture(scope="module")
def shared_cfg():
    # one config for all examples (building one per example is slow), in a list: hypothesis
    # probes its arguments with getattr, which a config answers with UnknownKeyError
    return [get_cfg()]


@settings(FUZZ, max_examples=25)
@given(
    key=st.sampled_from(
        [
            "SOLVER.BASE_LR",
            "SOLVER.IMS_PER_BATCH",
            "MODEL.DEVICE",
            "INPUT.MIN_SIZE_TRAIN",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "MODEL.NOPE",
            "SOLVER",
            "",
        ]
    ),
    value=yaml_values,
    raw=st.text(max_size=40),
)
def test_config_yaml_and_opts(shared_cfg, tmp_path_factory, key, value, raw):
    cfg = shared_cfg[0]
    cfg.defrost()
    try:
        cfg.merge_from_list([key, value])
        cfg.freeze()
    except ConfigError:
        pass
    cfg.defrost()
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    parts = key.split(".")
    nested = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1]))
    text = nested + f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value}\n"
    for body in (text, raw):
        path.write_text(body)
        try:
            cfg.merge_from_file(str(path))
        except ConfigError:
            pass


@FUZZ
@given(raw=st.binary(max_size=64), keep=st.floats(0, 1))
def test_checkpoint_bytes(tmp_path_factory, raw, keep):
    base = tmp_path_factory.getbasetemp()
    good = pickle.dumps({"model": {"w": np.arange(4.0)}, "x": [1, (2, 3)]}, protocol=2)
    for name, body in (
        ("f.pkl", raw),
        ("g.pkl", good[: int(len(good) * keep)] + raw),
        ("h.pth", raw),
    ):
        path = base / name
        path.write_bytes(body)
        try:
            (load_torch if name.endswith(".pth") else load_pickle)(path)
        except CheckpointError:
            pass


@pytest.fixture(scope="module")
def sam_predictor():
    from fixtures_util_sam import tiny_sam

    from masktron.predictors.sam_predictor import SamPredictor

    predictor = SamPredictor(tiny_sam())
    predictor.set_image(np.zeros((24, 32, 3), np.uint8))
    return predictor


coordinate = st.one_of(st.floats(-100, 200), st.just(math.nan), st.just(math.inf))


@settings(FUZZ, max_examples=30)
@given(
    points=st.one_of(st.none(), st.lists(st.tuples(coordinate, coordinate), max_size=3)),
    labels=st.one_of(st.none(), st.lists(st.integers(-1, 2), max_size=3)),
    box=st.one_of(st.none(), st.lists(coordinate, min_size=0, max_size=5)),
)
def test_sam_prompts(sam_predictor, points, labels, box):
    def array(values, dtype):
        return None if values is None else np.array(values, dtype=dtype)

    coords = array(points, np.float32)
    if coords is not None and coords.size == 0:
        coords = coords.reshape(0, 2)
    try:
        masks, scores, _ = sam_predictor.predict(
            point_coords=coords, point_labels=array(labels, np.int64), box=array(box, np.float32)
        )
    except ValueError:
        return
    assert masks.shape[1:] == (24, 32) and np.isfinite(scores).all()

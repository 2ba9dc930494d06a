"""SamPredictor: batched calls equal one-by-one calls, bad input gets clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_util_sam import fixture_predictor, load_rgb, tiny_sam

from masktron.predictors.sam_predictor import SamPredictor


@pytest.fixture(scope="module")
def astronaut_predictor():
    predictor = fixture_predictor()
    predictor.set_image(load_rgb("astronaut"))
    return predictor


@pytest.fixture(scope="module")
def tiny():
    return SamPredictor(tiny_sam(0))


def _photos():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        rng.integers(0, 256, (70, 30, 3), dtype=np.uint8),
    ]


BOXES = np.array([[40.0, 60.0, 300.0, 400.0], [0.0, 0.0, 512.0, 512.0], [200.5, 10.0, 250.0, 90.0]])


@pytest.mark.parametrize("multimask", [False, True])
def test_many_boxes_in_one_call_equal_one_by_one(astronaut_predictor, multimask):
    p = astronaut_predictor
    masks, ious, low_res = p.predict_many(boxes=BOXES, multimask_output=multimask)
    n = 3 if multimask else 1
    assert (
        masks.shape == (3, n, 512, 512)
        and ious.shape == (3, n)
        and low_res.shape == (3, n, 256, 256)
    )
    for i, box in enumerate(BOXES):
        m, iou, lr = p.predict(box=box, multimask_output=multimask)
        np.testing.assert_allclose(lr, low_res[i], atol=1e-3)
        np.testing.assert_allclose(iou, ious[i], atol=1e-4)
        assert (m != masks[i]).mean() < 1e-4  # only pixels at a logit of ~0 may flip


def test_many_points_with_padding_equal_one_by_one(astronaut_predictor):
    p = astronaut_predictor
    coords = np.array([[[100.0, 200.0], [0.0, 0.0]], [[300.0, 250.0], [320.0, 260.0]]])
    labels = np.array([[1, -1], [1, 0]])
    _, ious, low_res = p.predict_many(point_coords=coords, point_labels=labels)
    _, iou0, lr0 = p.predict(point_coords=coords[0, :1], point_labels=labels[0, :1])
    # a padding label is the same token that `predict` appends to points without a box
    _, iou1, lr1 = p.predict(point_coords=coords[1], point_labels=labels[1])
    np.testing.assert_allclose(lr1, low_res[1], atol=1e-3)
    np.testing.assert_allclose(iou1, ious[1], atol=1e-4)
    assert ious[0].shape == iou0.shape
    torch_masks, torch_ious, _ = p.predict_torch(
        torch.as_tensor(p.transform.apply_coords(coords, p.original_size), dtype=torch.float),
        torch.as_tensor(labels),
    )
    np.testing.assert_allclose(torch_ious.numpy(), ious, atol=1e-5)
    assert torch_masks.shape == (2, 3, 512, 512) and torch_masks.dtype == torch.bool


def test_decoding_more_prompts_than_a_chunk(astronaut_predictor, monkeypatch):
    import masktron.predictors.sam_predictor as module

    _, ious, low_res = astronaut_predictor.predict_many(boxes=BOXES, multimask_output=False)
    monkeypatch.setattr(module, "DECODE_CHUNK", 2)
    _, ious2, low_res2 = astronaut_predictor.predict_many(boxes=BOXES, multimask_output=False)
    np.testing.assert_allclose(low_res2, low_res, atol=1e-3)
    np.testing.assert_allclose(ious2, ious, atol=1e-4)


def test_image_batch_equals_one_by_one(tiny):
    photos = _photos()
    tiny.set_image_batch(photos)
    assert tiny.num_images == 2 and tiny.original_sizes == [(48, 64), (70, 30)]
    assert tiny.input_sizes == [(768, 1024), (1024, 439)]
    batch_features = tiny.get_image_embedding().clone()
    boxes = [np.array([[2.0, 3.0, 40.0, 30.0]]), np.array([[1.0, 1.0, 20.0, 60.0], [5, 5, 9, 9]])]
    batch_out = tiny.predict_batch(boxes=boxes, multimask_output=False)
    with pytest.raises(ValueError, match="2 images are set; pass image_index"):
        tiny.predict(box=boxes[0][0])
    single = tiny.predict(box=boxes[1][1], multimask_output=False, image_index=1)
    np.testing.assert_allclose(single[2], batch_out[1][2][1], atol=1e-4)
    for i, photo in enumerate(photos):
        tiny.set_image(photo)
        torch.testing.assert_close(
            tiny.get_image_embedding()[0], batch_features[i], atol=1e-4, rtol=1e-4
        )
        masks, ious, low_res = tiny.predict_many(boxes=boxes[i], multimask_output=False)
        np.testing.assert_allclose(low_res, batch_out[i][2], atol=1e-4)
        np.testing.assert_allclose(ious, batch_out[i][1], atol=1e-5)
        assert masks.shape == batch_out[i][0].shape == (len(boxes[i]), 1, *photo.shape[:2])


def test_bgr_input_and_set_torch_image_match_rgb(tiny):
    photo = _photos()[0]
    tiny.set_image(photo)
    rgb = tiny.get_image_embedding().clone()
    tiny.set_image(np.ascontiguousarray(photo[..., ::-1]), image_format="BGR")
    torch.testing.assert_close(tiny.get_image_embedding(), rgb)
    resized = tiny.transform.apply_image(photo)
    tensor = torch.as_tensor(resized).permute(2, 0, 1)[None]
    tiny.set_torch_image(tensor, photo.shape[:2])
    torch.testing.assert_close(tiny.get_image_embedding(), rgb)
    assert tiny.original_size == (48, 64) and tiny.input_size == (768, 1024)


def test_embedding_cache_skips_the_encoder(monkeypatch):
    predictor = SamPredictor(tiny_sam(0), cache_size=1)
    photos = _photos()
    calls = []
    encoder = predictor.model.image_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: calls.append(1) or original(x))
    predictor.set_image(photos[0])
    first = predictor.get_image_embedding()
    predictor.reset_image()
    predictor.set_image(photos[0].copy())
    assert len(calls) == 1 and predictor.get_image_embedding() is not None
    torch.testing.assert_close(predictor.get_image_embedding(), first)
    predictor.set_image(photos[1])
    predictor.set_image(photos[0])  # evicted: cache_size 1
    assert len(calls) == 3


def test_reset_and_missing_image_errors(tiny):
    p = SamPredictor(tiny.model)
    with pytest.raises(RuntimeError, match="set_image"):
        p.predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))
    with pytest.raises(RuntimeError, match="set_image"):
        p.get_image_embedding()
    p.set_image(_photos()[0])
    p.reset_image()
    assert not p.is_image_set and p.features is None


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((0, 8, 3), np.uint8), r"shape \(H, W, 3\)"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images(tiny, image, message):
    with pytest.raises(ValueError, match=message):
        tiny.set_image(image)


def test_bad_image_format_and_torch_image(tiny):
    with pytest.raises(ValueError, match="image_format"):
        tiny.set_image(_photos()[0], image_format="RGBA")
    with pytest.raises(ValueError, match="long side 1024"):
        tiny.set_torch_image(torch.zeros(1, 3, 100, 100), (100, 100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"point_coords": np.array([[70.0, 10.0]]), "point_labels": np.array([1])},
            "outside the image",
        ),
        (
            {"point_coords": np.array([[-1.0, 10.0]]), "point_labels": np.array([1])},
            r"point_coords\[0\] = \(-1, 10\)",
        ),
        ({"point_coords": np.array([10.0, 10.0]), "point_labels": np.array([1])}, r"\(N, 2\)"),
        (
            {"point_coords": np.array([[1.0, 1.0]]), "point_labels": np.array([1, 0])},
            "point_labels must have shape",
        ),
        (
            {"point_coords": np.array([[1.0, 1.0]]), "point_labels": np.array([2])},
            "1 .foreground. or 0",
        ),
        ({"point_coords": np.array([[1.0, 1.0]])}, "given together"),
        ({"point_coords": np.array([[np.nan, 1.0]]), "point_labels": np.array([1])}, "NaN"),
        ({"box": np.array([0.0, 0.0, 65.0, 10.0])}, "outside the image"),
        ({"box": np.array([10.0, 0.0, 5.0, 10.0])}, "x0 <= x1"),
        ({"box": np.array([[0.0, 0.0, 5.0, 10.0], [1, 1, 2, 2]])}, "predict_many"),
        ({"mask_input": np.zeros((256, 256))}, r"\(1, 256, 256\)"),
    ],
)
def test_bad_prompts(tiny, kwargs, message):
    tiny.set_image(_photos()[0])  # 48 x 64 (H x W)
    with pytest.raises(ValueError, match=message):
        tiny.predict(**kwargs)


def test_bad_batched_prompts(tiny):
    tiny.set_image(_photos()[0])
    with pytest.raises(ValueError, match=r"boxes must have shape \(K, 4\)"):
        tiny.predict_many(boxes=np.zeros(4))
    with pytest.raises(ValueError, match="different counts"):
        tiny.predict_many(boxes=np.zeros((2, 4)), mask_input=np.zeros((3, 1, 256, 256)))
    with pytest.raises(ValueError, match="at least one"):
        tiny.predict_many()
    with pytest.raises(ValueError, match=r"point_coords must be \(B, N, 2\)"):
        tiny.predict_torch(torch.zeros(2, 2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="prompt batch sizes differ"):
        tiny.predict_torch(
            None, None, boxes=torch.zeros(2, 4), mask_input=torch.zeros(3, 1, 256, 256)
        )
    with pytest.raises(ValueError, match="1 entries for 2 images"):
        tiny.set_image_batch(_photos())
        tiny.predict_batch(boxes=[np.zeros((1, 4))])

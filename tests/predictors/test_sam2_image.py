"""SAM2ImagePredictor on masktron's SAM 2.1 tiny and base+ (fixture checkpoints) against Meta's
stored outputs; batch = one by one; Meta's return conventions; prompt errors; refine_with_sam.

Thresholds (issue 13, as SAM's fixtures): mask IoU >= 0.99, |d iou_predictions| <= 2e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_util_sam import mask_iou, prompt_kwargs
from PIL import Image
from sam2_image_util import (
    BASE_PLUS,
    PROMPT_CASES,
    TINY,
    fixture_predictor,
    fixture_sam2,
    load_rgb,
    reference,
    unpack_masks,
)

from masktron.predictors.sam2_image import SAM2ImagePredictor, pretrained_variant
from masktron.predictors.sam2_transforms import SAM2Transforms
from masktron.predictors.sam_bridge import refine_with_sam
from masktron.structures import Boxes, Instances

CASES = [(c, mm) for c in PROMPT_CASES for mm in (0, 1) if (c, mm) != ("point_mask", 0)]


def _check_case(masks, ious, key):
    ref = unpack_masks(key)
    assert masks.shape == ref.shape and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    for ours, theirs in zip(masks, ref):
        assert mask_iou(ours > 0, theirs) >= 0.99
    np.testing.assert_allclose(ious, reference()[f"{key}/iou_predictions"], atol=2e-3)


@pytest.fixture(scope="module", params=[TINY, BASE_PLUS])
def astronaut(request):
    predictor = fixture_predictor(request.param)
    image = load_rgb("astronaut")
    predictor.set_image(image)
    return request.param, image, predictor


@pytest.mark.parametrize(("case", "mm"), CASES)
def test_prompts_match_meta(astronaut, case, mm):
    variant, image, predictor = astronaut
    predictor.set_image(image)  # cached embedding: other tests may have set another image
    kwargs = prompt_kwargs(case, image.shape[1], image.shape[0])
    prefix = f"{variant}/astronaut"
    if case == "point_mask":
        kwargs["mask_input"] = reference()[f"{prefix}/point1/mm1/low_res_best"].astype(np.float32)
    masks, ious, low_res = predictor.predict(**kwargs, multimask_output=bool(mm))
    _check_case(masks, ious, f"{prefix}/{case}/mm{mm}")
    assert low_res.shape == (len(masks), 256, 256) and np.abs(low_res).max() <= 32
    if case == "point1" and mm:  # Meta's best low-res logits, stored as float16
        best = low_res[int(np.argmax(ious))][None]
        ref = reference()[f"{prefix}/point1/mm1/low_res_best"].astype(np.float32)
        np.testing.assert_allclose(best, ref, atol=2e-2)


def test_set_image_batch_equals_set_image():
    astronaut, coffee = load_rgb("astronaut"), load_rgb("coffee")
    batch = SAM2ImagePredictor(fixture_sam2(TINY))  # no cache: one encoder pass over both
    batch.set_image_batch([astronaut, coffee])
    assert batch.get_image_embedding().shape == (2, 256, 64, 64)
    single = fixture_predictor(TINY)
    single.set_image(astronaut)
    torch.testing.assert_close(
        batch.get_image_embedding()[:1], single.get_image_embedding(), atol=1e-4, rtol=1e-4
    )
    sizes = [(im.shape[1], im.shape[0]) for im in (astronaut, coffee)]
    points = [prompt_kwargs("point2neg", w, h) for w, h in sizes]
    masks, ious, low_res = batch.predict_batch(
        [p["point_coords"] for p in points], [p["point_labels"] for p in points],
        multimask_output=False,
    )  # fmt: skip
    assert len(masks) == len(ious) == len(low_res) == 2
    for i, name in enumerate(("astronaut", "coffee")):
        _check_case(masks[i], ious[i], f"{TINY}/{name}/point2neg/mm0")
    boxes = [prompt_kwargs("box", w, h)["box"] for w, h in sizes]
    masks, ious, _ = batch.predict_batch(box_batch=boxes)
    _check_case(masks[1], ious[1], f"{TINY}/coffee/box/mm1")
    with pytest.raises(ValueError, match="2 images are set"):
        batch.predict(box=boxes[0])
    masks, ious, _ = batch.predict(box=boxes[1], image_index=1)
    _check_case(masks, ious, f"{TINY}/coffee/box/mm1")
    with pytest.raises(ValueError, match="box_batch has 1 entries for 2 images"):
        batch.predict_batch(box_batch=boxes[:1])


@pytest.fixture
def tiny():
    predictor = fixture_predictor(TINY)
    image = load_rgb("astronaut")
    predictor.set_image(image)
    return image, predictor


def test_coordinates_formats_and_many_prompts(tiny):
    image, predictor = tiny
    h, w = image.shape[:2]
    ref, ref_iou, _ = predictor.predict(**prompt_kwargs("point2neg", w, h))
    # normalize_coords=False: XY already relative to (W, H)
    rel = prompt_kwargs("point2neg", 1, 1)
    masks, ious, _ = predictor.predict(**rel, normalize_coords=False)
    np.testing.assert_array_equal(masks, ref)
    np.testing.assert_allclose(ious, ref_iou, atol=1e-6)
    # BGR and PIL inputs are the same image (the embedding cache recognises its pixels)
    embedding = predictor.get_image_embedding()
    predictor.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    assert torch.equal(predictor.get_image_embedding(), embedding)
    predictor.set_image(Image.fromarray(image))
    assert torch.equal(predictor.get_image_embedding(), embedding)
    # K boxes at once: a leading K dimension (Meta drops it only when K == 1)
    boxes = np.array([prompt_kwargs("box", w, h)["box"], [10, 20, 200, 300]])
    logits, ious, low_res = predictor.predict(box=boxes, multimask_output=False, return_logits=True)
    assert (
        logits.shape == (2, 1, h, w) and ious.shape == (2, 1) and low_res.shape == (2, 1, 256, 256)
    )
    assert logits.min() < 0 < logits.max()
    _check_case((logits[0] > 0).astype(np.float32), ious[0], f"{TINY}/astronaut/box/mm0")
    one, one_iou, _ = predictor.predict(box=boxes[1], multimask_output=False)
    assert one.shape == (1, h, w) and mask_iou(one[0] > 0, logits[1, 0] > 0) >= 0.99
    np.testing.assert_allclose(one_iou, ious[1], atol=1e-5)
    many, _, _ = predictor.predict_many(boxes=boxes[:1], multimask_output=False)
    assert many.shape == (1, 1, h, w) and many.dtype == bool
    np.testing.assert_array_equal(many[0], logits[0] > 0)


def test_prompt_errors_name_the_field(tiny):
    image, predictor = tiny
    with pytest.raises(ValueError, match=r"point_coords\[0, 0\] = \(600, 10\) lies outside"):
        predictor.predict(point_coords=np.array([[600, 10]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="point_labels must be supplied"):
        predictor.predict(point_coords=np.array([[6, 10]]))
    with pytest.raises(ValueError, match="point_labels must be 1"):
        predictor.predict(point_coords=np.array([[6, 10]]), point_labels=np.array([2]))
    with pytest.raises(ValueError, match="not XYXY"):
        predictor.predict(box=np.array([50, 50, 10, 10]))
    with pytest.raises(ValueError, match=r"mask_input must have shape \(K, 1, 256, 256\)"):
        predictor.predict(mask_input=np.zeros((1, 1, 64, 64)))
    with pytest.raises(ValueError, match="different counts"):
        predictor.predict(box=np.zeros((2, 4)), mask_input=np.zeros((3, 1, 256, 256)))
    with pytest.raises(RuntimeError, match="set_image_batch"):
        predictor.predict_batch(box_batch=[np.array([1, 2, 3, 4])])
    with pytest.raises(ValueError, match="uint8"):
        predictor.set_image(image.astype(np.float32))
    with pytest.raises(ValueError, match="image_format"):
        predictor.set_image(image, image_format="HSV")
    empty = SAM2ImagePredictor(fixture_sam2(TINY))
    with pytest.raises(RuntimeError, match="An image must be set"):
        empty.predict(box=np.array([1, 2, 3, 4]))
    with pytest.raises(RuntimeError, match="An image must be set"):
        empty.get_image_embedding()
    predictor.reset_predictor()
    assert not predictor.is_image_set and predictor.num_images == 0


def test_holes_filled_and_sprinkles_removed_on_the_low_res_logits():
    logits = torch.full((1, 2, 12, 12), -5.0)
    logits[:, :, 2:8, 2:8] = 5.0
    logits[:, :, 4:6, 4:6] = -3.0  # a hole of 4 pixels
    logits[:, :, 10, 10] = 2.0  # an island of 1 pixel
    plain = SAM2Transforms(1024).postprocess_masks(logits, (12, 12))
    torch.testing.assert_close(plain, logits)  # same size: bilinear is the identity
    out = SAM2Transforms(1024, max_hole_area=4, max_sprinkle_area=1).postprocess_masks(
        logits, (12, 12)
    )
    expected = logits.clone()
    expected[:, :, 4:6, 4:6] = 10.0  # threshold + 10
    expected[:, :, 10, 10] = -10.0  # threshold - 10
    torch.testing.assert_close(out, expected)
    small = SAM2Transforms(1024, max_hole_area=3).postprocess_masks(logits, (12, 12))
    torch.testing.assert_close(small, logits)  # the hole is larger than 3 pixels


def test_refine_with_sam2_predictor_and_model(tiny):
    image, predictor = tiny
    h, w = image.shape[:2]
    boxes = torch.tensor(np.stack([prompt_kwargs("box", w, h)["box"], [10.0, 20.0, 200.0, 300.0]]))
    instances = Instances((h, w), pred_boxes=Boxes(boxes), scores=torch.tensor([0.9, 0.8]))
    refined = refine_with_sam(predictor, {"instances": instances}, image)
    assert refined.pred_masks.shape == (2, h, w) and refined.pred_masks.dtype == torch.bool
    assert torch.equal(refined.scores, instances.scores)
    expected, ious, _ = predictor.predict(box=boxes.numpy(), multimask_output=False)
    np.testing.assert_array_equal(refined.pred_masks.numpy(), expected[:, 0] > 0)
    np.testing.assert_allclose(refined.sam_scores.numpy(), ious[:, 0], atol=1e-6)
    assert (
        mask_iou(refined.pred_masks[0].numpy(), unpack_masks(f"{TINY}/astronaut/box/mm0")[0])
        >= 0.99
    )
    one = refine_with_sam(predictor, instances[:1])  # the image already set
    np.testing.assert_array_equal(one.pred_masks.numpy(), refined.pred_masks[:1].numpy())
    with pytest.raises(TypeError, match="SAM2ImagePredictor"):
        refine_with_sam(object(), instances, image)


def test_pretrained_names():
    assert pretrained_variant("facebook/sam2.1-hiera-large") == "sam2.1_hiera_l"
    assert pretrained_variant("facebook/sam2-hiera-base-plus") == "sam2_hiera_b+"
    assert pretrained_variant("sam2.1_hiera_t") == "sam2.1_hiera_t"
    with pytest.raises(ValueError, match="unknown SAM 2 model 'facebook/sam3'"):
        SAM2ImagePredictor.from_pretrained("facebook/sam3")

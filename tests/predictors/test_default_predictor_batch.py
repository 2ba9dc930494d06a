"""`DefaultPredictor.predict_batch` gives what one `__call__` per image gives, and batches."""

import numpy as np
import pytest
import torch
from rcnn_tiny import tiny_cfg

from masktron.engine import DefaultPredictor


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    cfg = tiny_cfg("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    cfg.INPUT.MIN_SIZE_TEST = 128
    cfg.INPUT.MAX_SIZE_TEST = 400
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    return DefaultPredictor(cfg)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    # resized to (128, 171) and (128, 179): both pad to (128, 192), one batch; (192, 128) alone
    sizes = [(96, 128), (100, 140), (150, 100), (96, 128)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.fixture(scope="module")
def singles(predictor, images) -> list[dict]:
    return [predictor(image) for image in images]


def test_predict_batch_equals_single_calls_on_images_of_different_sizes(predictor, images, singles):
    calls: list[tuple[int, ...]] = []
    hook = predictor.model.backbone.register_forward_pre_hook(
        lambda _m, args: calls.append(tuple(args[0].shape))
    )
    try:
        batch = predictor.predict_batch(images)
    finally:
        hook.remove()
    # one backbone call per padded shape: three images of (128, 192), one of (192, 128)
    assert sorted(calls) == [(1, 3, 192, 128), (3, 3, 128, 192)]
    assert len(batch) == len(images)
    for image, one, many in zip(images, singles, batch):
        a, b = one["instances"], many["instances"]
        assert len(a) > 0 and len(a) == len(b)
        assert a.image_size == b.image_size == image.shape[:2]
        # batched convolutions round differently: 0.01-0.07 px seen (by thread count), against
        # 100 px when padding differed
        torch.testing.assert_close(b.pred_boxes.tensor, a.pred_boxes.tensor, atol=0.25, rtol=0)
        torch.testing.assert_close(b.scores, a.scores, atol=1e-3, rtol=0)
        assert torch.equal(b.pred_classes, a.pred_classes)
        differing = (a.pred_masks != b.pred_masks).float().mean().item()
        # the random tiny model's mask probabilities crowd around 0.5, so rounding flips some
        # pixels (up to 0.17% seen, by thread count); a mask pasted at a shifted box differs in
        # far more
        assert differing < 0.01


def test_predict_batch_of_one_and_of_none(predictor, images, singles):
    (out,) = predictor.predict_batch([images[2]])
    torch.testing.assert_close(out["instances"].scores, singles[2]["instances"].scores)
    assert predictor.predict_batch([]) == []

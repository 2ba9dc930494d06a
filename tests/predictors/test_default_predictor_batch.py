"""`DefaultPredictor.predict_batch` gives what one `__call__` per image gives, and batches.

On the bundled DSB2018 model (trained: confident scores and masks, so float rounding between a
batched and a single convolution cannot hide a real difference) and its demo photos, at a small
test size so that the test stays cheap.
"""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from masktron import model_zoo
from masktron.cli.demo import DEMO_CONFIG, DEMO_IMAGE_DIR
from masktron.engine import DefaultPredictor


@pytest.fixture(scope="module")
def predictor():
    cfg = model_zoo.get_config(DEMO_CONFIG, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.MIN_SIZE_TEST = 256
    cfg.INPUT.MAX_SIZE_TEST = 400
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 300
    cfg.TEST.DETECTIONS_PER_IMAGE = 40
    return DefaultPredictor(cfg)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """BGR photos: (256, 320) and a crop of it that resizes to (256, 307) pad to one (256, 320)
    batch; (520, 696) resizes to (256, 342) and pads to (256, 352), alone."""

    def bgr(name: str) -> np.ndarray:
        path = os.path.join(DEMO_IMAGE_DIR, f"dsb2018_val_{name}.png")
        return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])

    wide, large = bgr("0c2550a23b8a"), bgr("1f6b7cead153")
    assert wide.shape[:2] == (256, 320) and large.shape[:2] == (520, 696)
    return [wide, large, np.ascontiguousarray(wide[:-6, :-20])]


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
    # one backbone call per padded shape: two images of (256, 320), one of (256, 352)
    assert sorted(calls) == [(1, 3, 256, 352), (2, 3, 256, 320)]
    assert len(batch) == len(images)
    for image, one, many in zip(images, singles, batch):
        a, b = one["instances"], many["instances"]
        assert len(a) >= 10 and len(a) == len(b)
        assert a.image_size == b.image_size == image.shape[:2]
        # batched convolutions round differently (3e-5 px and 1e-6 seen; with MODEL.CHANNELS_LAST,
        # the default, 2.4e-4 px and 1.04e-5), against the 100 px a padding error gives
        torch.testing.assert_close(b.pred_boxes.tensor, a.pred_boxes.tensor, atol=1e-3, rtol=0)
        torch.testing.assert_close(b.scores, a.scores, atol=5e-5, rtol=0)
        assert torch.equal(b.pred_classes, a.pred_classes)
        differing = (a.pred_masks != b.pred_masks).float().mean().item()
        assert differing < 1e-4  # (none seen)


def test_predict_batch_of_one_and_of_none(predictor, images, singles):
    (out,) = predictor.predict_batch([images[1]])
    torch.testing.assert_close(out["instances"].scores, singles[1]["instances"].scores)
    torch.testing.assert_close(
        out["instances"].pred_boxes.tensor, singles[1]["instances"].pred_boxes.tensor
    )
    assert predictor.predict_batch([]) == []

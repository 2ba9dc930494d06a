"""`Sam.forward` (Meta's batched end-to-end API) agrees with `SamPredictor` on each image."""

from __future__ import annotations

import numpy as np
import torch
from fixtures_util_sam import tiny_sam

from masktron.predictors.sam_predictor import SamPredictor


def test_forward_on_a_batch_matches_the_predictor():
    model = tiny_sam(0)
    predictor = SamPredictor(model)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 32, 3), dtype=np.uint8),
    ]
    boxes = [np.array([[2.0, 3.0, 40.0, 30.0]]), np.array([[1.0, 1.0, 20.0, 60.0]])]
    points = np.array([[[10.0, 12.0]]])
    batched = []
    for image, box in zip(images, boxes):
        resized = predictor.transform.apply_image(image)
        size = image.shape[:2]
        batched.append(
            {
                "image": torch.as_tensor(resized).permute(2, 0, 1),  # (h, w, 3) -> (3, h, w)
                "original_size": size,
                "boxes": torch.as_tensor(predictor.transform.apply_boxes(box, size)).float(),
                "point_coords": torch.as_tensor(
                    predictor.transform.apply_coords(points, size)
                ).float(),
                "point_labels": torch.ones(1, 1, dtype=torch.int),
            }
        )
    outputs = model(batched, multimask_output=False)
    assert len(outputs) == 2
    for image, box, out in zip(images, boxes, outputs):
        predictor.set_image(image)
        masks, ious, low_res = predictor.predict(
            point_coords=points[0], point_labels=np.array([1]), box=box[0], multimask_output=False
        )
        assert out["masks"].shape == (1, 1, *image.shape[:2]) and out["masks"].dtype == torch.bool
        np.testing.assert_allclose(out["low_res_logits"][0].numpy(), low_res, atol=1e-4)
        np.testing.assert_allclose(out["iou_predictions"][0].numpy(), ious, atol=1e-5)
        assert (out["masks"][0].numpy() != masks).mean() < 1e-3

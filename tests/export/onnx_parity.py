"""Helpers of the detector-export tests: a model exported once per test module, and the
comparison of onnxruntime's detections (through `OnnxDetector`) with the PyTorch model's."""

from __future__ import annotations

import numpy as np
from parity_utils import box_iou
from scipy.optimize import linear_sum_assignment


def compare_with_pytorch(torch_out: dict, onnx_out: dict) -> dict:
    """Hungarian matching on box IoU within a class (original-image pixels): a pair agrees at
    IoU >= 0.98 and |d score| <= 0.005. Returns the agreeing fraction (of the larger list),
    the mean mask IoU over agreeing pairs, and for panoptic outputs the fraction of pixels
    in the same segment (after matching segment ids one-to-one)."""
    inst = torch_out["instances"].to("cpu")
    eb, es = inst.pred_boxes.tensor.numpy(), inst.scores.numpy()
    ec = inst.pred_classes.numpy()
    b, s, c = onnx_out["boxes"], onnx_out["scores"], onnx_out["classes"]
    iou = box_iou(eb, b) * (ec[:, None] == c[None])
    rows, cols = linear_sum_assignment(-iou)
    pairs = [(i, j) for i, j in zip(rows, cols) if iou[i, j] >= 0.98 and abs(es[i] - s[j]) <= 0.005]
    result = {"agree": len(pairs) / max(len(eb), len(b), 1), "count": (len(eb), len(b))}
    if inst.has("pred_masks"):
        em, m = inst.pred_masks.numpy(), onnx_out["masks"]
        # two empty masks (a box thinner than a pixel) agree perfectly
        ious = [
            (em[i] & m[j]).sum() / (em[i] | m[j]).sum() if (em[i] | m[j]).any() else 1.0
            for i, j in pairs
        ]
        result["mask_iou"] = float(np.mean(ious)) if ious else 1.0
    if "panoptic_seg" in torch_out:
        ref = torch_out["panoptic_seg"][0].cpu().numpy()
        ours = onnx_out["panoptic_seg"][0]
        ref_ids, ref_index = np.unique(ref, return_inverse=True)
        our_ids, our_index = np.unique(ours, return_inverse=True)
        shared = np.zeros((len(ref_ids), len(our_ids)), dtype=np.int64)
        np.add.at(shared, (ref_index.ravel(), our_index.ravel()), 1)
        r, k = linear_sum_assignment(shared, maximize=True)
        result["panoptic_pixels"] = shared[r, k].sum() / ref.size
    return result


def assert_agrees(result: dict) -> None:
    """The issue's bar: >= 99% of detections, mean mask IoU >= 0.99, 99.5% panoptic pixels."""
    assert result["count"][0] > 0, "no detections to compare: the test would prove nothing"
    assert result["agree"] >= 0.99, result
    assert result.get("mask_iou", 1.0) >= 0.99, result
    assert result.get("panoptic_pixels", 1.0) >= 0.995, result

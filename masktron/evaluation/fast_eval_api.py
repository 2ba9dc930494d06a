"""Detectron2's `detectron2.evaluation.fast_eval_api` import path: `COCOeval_opt`, pycocotools'
`COCOeval` interface running on hotcoco (same figures, a fraction of the time).

It takes pycocotools `COCO` objects, as Detectron2's code passes them (`COCO(json)` and
`coco_gt.loadRes(results)`), or hotcoco's. `params`, `evaluate`, `accumulate`, `summarize`,
`stats` and `eval` behave as pycocotools' (hotcoco's `Params` takes whole lists:
`ev.params.maxDets = [1, 10, 300]`). Input that pycocotools' `COCOeval` refuses is refused
with the same exception type (hotcoco would fill the gaps): a ground-truth annotation without
`area`, `iscrowd` or the `bbox` / `segmentation` / `num_keypoints` its iouType needs, a
detection without `score` (KeyError); empty `iouThrs` or `maxDets`, or fewer than the three
`maxDets` that the box and mask summaries read (IndexError).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from masktron.evaluation.engine import require_hotcoco


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (pycocotools' `loadRes` leaves some) as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("ascii")
    raise TypeError(f"cannot pass {type(value).__name__} to hotcoco")


def _as_hotcoco(coco: Any, hotcoco: Any) -> Any:
    if isinstance(coco, hotcoco.COCO):
        return coco
    # the annotations as they are: pycocotools' loadRes already set area, bbox, id, iscrowd
    dataset = json.loads(json.dumps(coco.dataset, default=_plain))
    dataset.setdefault("annotations", [])
    return hotcoco.COCO(dataset)


# Fields pycocotools' COCOeval reads from every ground-truth annotation, by iouType.
_GT_FIELDS = {
    "bbox": ("area", "iscrowd", "bbox"),
    "segm": ("area", "iscrowd", "segmentation"),
    "keypoints": ("num_keypoints",),
}


def _annotations(coco: Any) -> list[dict]:
    anns = getattr(coco, "anns", None)  # pycocotools' COCO; hotcoco's was checked by its reader
    return list(anns.values()) if isinstance(anns, dict) else []


def _check_like_pycocotools(gt: Any, dt: Any, iou_type: str, params: Any) -> None:
    """Raise what pycocotools' `COCOeval.evaluate` raises on the same input."""
    for field in _GT_FIELDS.get(iou_type, ()):
        for ann in _annotations(gt):
            if field not in ann:
                raise KeyError(f"ground-truth annotation {ann.get('id')} has no {field!r}")
    if iou_type != "keypoints":  # keypoint evaluation stops at num_keypoints first
        for ann in _annotations(dt):
            if "score" not in ann:
                raise KeyError(f"detection {ann.get('id')} has no 'score'")
    for name in ("iouThrs", "maxDets"):
        if len(getattr(params, name)) == 0:
            raise IndexError(f"COCOeval params.{name} is empty")


class COCOeval_opt:  # noqa: N801 - Detectron2's name
    """`COCOeval(cocoGt, cocoDt, iouType)` on hotcoco; see the module docstring."""

    def __init__(self, cocoGt: Any = None, cocoDt: Any = None, iouType: str = "segm"):  # noqa: N803
        hotcoco = require_hotcoco("COCOeval_opt")
        self._eval = hotcoco.COCOeval(
            _as_hotcoco(cocoGt, hotcoco), _as_hotcoco(cocoDt, hotcoco), iouType
        )
        self._inputs = (cocoGt, cocoDt, iouType)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_eval"], name)

    def evaluate(self) -> None:
        gt, dt, iou_type = self._inputs
        _check_like_pycocotools(gt, dt, iou_type, self._eval.params)
        self._eval.evaluate()

    def summarize(self) -> None:
        if self._inputs[2] != "keypoints" and len(self._eval.params.maxDets) < 3:
            raise IndexError(
                "COCOeval summarize reads three maxDets (e.g. [1, 10, 100]), got "
                f"{list(self._eval.params.maxDets)}"
            )
        self._eval.summarize()

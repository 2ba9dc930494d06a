"""Detectron2's `detectron2.evaluation.fast_eval_api` import path: `COCOeval_opt`, pycocotools'
`COCOeval` interface running on hotcoco (same figures, a fraction of the time).

It takes pycocotools `COCO` objects, as Detectron2's code passes them (`COCO(json)` and
`coco_gt.loadRes(results)`), or hotcoco's. `params`, `evaluate`, `accumulate`, `summarize`,
`stats` and `eval` behave as pycocotools' (hotcoco's `Params` takes whole lists:
`ev.params.maxDets = [1, 10, 300]`).
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


class COCOeval_opt:  # noqa: N801 - Detectron2's name
    """`COCOeval(cocoGt, cocoDt, iouType)` on hotcoco; see the module docstring."""

    def __init__(self, cocoGt: Any = None, cocoDt: Any = None, iouType: str = "segm"):  # noqa: N803
        hotcoco = require_hotcoco("COCOeval_opt")
        self._eval = hotcoco.COCOeval(
            _as_hotcoco(cocoGt, hotcoco), _as_hotcoco(cocoDt, hotcoco), iouType
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_eval"], name)

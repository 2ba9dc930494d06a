"""Detectron2's `detectron2.evaluation.fast_eval_api` import path: `COCOeval_opt`, a faster
drop-in for pycocotools' `COCOeval`, is faster-coco-eval's `COCOeval_faster` here."""

from faster_coco_eval import COCOeval_faster as COCOeval_opt  # noqa: F401

"""`COCOPanopticEvaluator`: PQ of a model's `panoptic_seg` outputs on a COCO panoptic dataset."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from typing import Any

import numpy as np
import torch
from PIL import Image

from masktron.data.catalog import MetadataCatalog
from masktron.evaluation.coco_checks import read_json
from masktron.evaluation.evaluator import DatasetEvaluator, gather_to_main
from masktron.evaluation.panoptic_pq import id_to_rgb, pq_with_occurring
from masktron.evaluation.table import panoptic_table, per_category_table
from masktron.utils.file_io import atomic_open

logger = logging.getLogger(__name__)


class COCOPanopticEvaluator(DatasetEvaluator):
    """PQ, SQ, RQ (All, Things, Stuff, per category) with the COCO panoptic rules.

    Each prediction is kept as a COCO panoptic PNG and segments_info; `evaluate` writes them
    (to `output_dir`, else a temporary folder) and scores them with `pq_compute` against the
    ground truth of the processed images. The metadata of `dataset_name` gives `panoptic_json`,
    `panoptic_root`,
    `thing_dataset_id_to_contiguous_id`, `stuff_dataset_id_to_contiguous_id` (and
    `label_divisor` for outputs without segments_info).

    Args:
        dataset_name: a registered COCO panoptic dataset.
        output_dir: if set, predictions are written there in COCO panoptic format:
            `<output_dir>/predictions.json` and the PNGs in `<output_dir>/predictions/`, ready for
            `pq_compute` or the COCO server.
        distributed: gather per-image figures from all ranks to rank 0.
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None, distributed: bool = True):
        self._metadata = MetadataCatalog.get(dataset_name)
        for key in ("panoptic_json", "panoptic_root"):
            if self._metadata.get(key) is None:
                raise ValueError(f"COCOPanopticEvaluator: dataset {dataset_name!r} has no {key!r}")
        self._gt_json_file = self._metadata.panoptic_json
        self._gt_json = read_json(self._gt_json_file)
        self._categories = {c["id"]: c for c in self._gt_json.get("categories", [])}
        self._gt_by_image = {a["image_id"]: a for a in self._gt_json.get("annotations", [])}
        self._thing_ids = {
            v: k for k, v in (self._metadata.get("thing_dataset_id_to_contiguous_id") or {}).items()
        }
        self._stuff_ids = {
            v: k for k, v in (self._metadata.get("stuff_dataset_id_to_contiguous_id") or {}).items()
        }
        self._output_dir = output_dir
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._predictions: list[dict[str, Any]] = []

    def _dataset_category(self, segment: dict[str, Any]) -> dict[str, Any]:
        # plain Python values (a model may give tensors or numpy scalars), ready for JSON
        segment = {k: v.item() if hasattr(v, "item") else v for k, v in segment.items()}
        isthing = segment.pop("isthing", None)
        if isthing is None:  # the model already predicts dataset category ids
            return segment
        mapping = self._thing_ids if isthing else self._stuff_ids
        if segment["category_id"] not in mapping:
            kind = "thing" if isthing else "stuff"
            raise ValueError(
                f"predicted {kind} class {segment['category_id']} has no dataset id in the "
                f"metadata's {kind}_dataset_id_to_contiguous_id"
            )
        segment["category_id"] = mapping[segment["category_id"]]
        return segment

    def _from_labels(self, panoptic: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Outputs without segments_info: ids are class * label_divisor + instance, -1 VOID."""
        divisor = self._metadata.get("label_divisor")
        if divisor is None:
            raise ValueError("panoptic output without segments_info needs metadata label_divisor")
        thing_classes = set(self._thing_ids)
        segments = [
            {
                "id": int(label) + 1,
                "category_id": int(label) // divisor,
                "isthing": int(label) // divisor in thing_classes,
            }
            for label in np.unique(panoptic)
            if label != -1
        ]
        return panoptic + 1, segments  # VOID -1 becomes COCO's 0

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Score each `outputs[i]["panoptic_seg"]` = ((H, W) segment ids, segments_info)."""
        for inp, out in zip(inputs, outputs):
            panoptic, segments = out["panoptic_seg"]
            panoptic = torch.as_tensor(panoptic).cpu().numpy().astype(np.int64)
            if segments is None:
                panoptic, segments = self._from_labels(panoptic)
            segments = [self._dataset_category(s) for s in segments]
            image_id = inp["image_id"]
            if image_id not in self._gt_by_image:
                raise ValueError(f"image id {image_id!r} is not in {self._gt_json_file}")
            where = f"prediction for image {image_id!r}"
            if panoptic.min() < 0 or panoptic.max() >= 1 << 24:
                raise ValueError(f"{where}: segment ids must be in [0, 2^24) to save as PNG")
            png = io.BytesIO()
            Image.fromarray(id_to_rgb(panoptic)).save(png, format="PNG")
            name = os.path.splitext(os.path.basename(inp.get("file_name", "")))[0] + ".png"
            self._predictions.append(
                {
                    "image_id": image_id,
                    "file_name": name,
                    "segments_info": segments,
                    "png": png.getvalue(),
                }
            )

    def evaluate(self) -> dict[str, dict[str, float]]:
        """{"panoptic_seg": {PQ, SQ, RQ, PQ_th, ..., RQ_st, PQ-<category>...}} in percent."""
        gathered = gather_to_main(self._predictions) if self._distributed else [self._predictions]
        if not gathered:
            return {}
        predictions = [p for rank in gathered for p in rank]
        if not predictions:
            logger.warning("[COCOPanopticEvaluator] Did not receive valid predictions.")
            return {}
        if len({p["file_name"] for p in predictions}) < len(predictions):
            for p in predictions:  # inputs with the same file name: name the PNGs by image id
                p["file_name"] = f"{p['image_id']}.png"
        with tempfile.TemporaryDirectory(prefix="masktron_panoptic_") as tmp:
            pred_json = self._write(predictions, self._output_dir or tmp)
            # the ground truth of the processed images only (evaluate on a subset, as before)
            processed = {p["image_id"] for p in predictions}
            gt = {k: v for k, v in self._gt_json.items() if k != "annotations"}
            gt["annotations"] = [self._gt_by_image[i] for i in self._gt_by_image if i in processed]
            gt_json = os.path.join(tmp, "ground_truth.json")
            with open(gt_json, "w") as f:
                json.dump(gt, f)
            pq, occurring = pq_with_occurring(
                gt_json, pred_json, self._metadata.panoptic_root, pred_json[: -len(".json")]
            )
        logger.info("Panoptic Evaluation Results:\n%s", panoptic_table(pq))
        res = {}
        for suffix, group in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
            for key in ("pq", "sq", "rq"):
                res[key.upper() + suffix] = 100 * pq[group][key]
        names = {c: str(info.get("name", c)) for c, info in self._categories.items()}
        for key in ("pq", "sq", "rq"):
            for cat, values in pq["per_class"].items():
                value = 100 * values[key] if cat in occurring else float("nan")
                res[f"{key.upper()}-{names[cat]}"] = value
        per_cat = {k[3:]: v for k, v in res.items() if k.startswith("PQ-")}
        logger.info("Per-category PQ:\n%s", per_category_table(per_cat, "PQ"))
        return {"panoptic_seg": res}

    def _write(self, predictions: list[dict[str, Any]], output_dir: str) -> str:
        """Write `predictions.json` and `predictions/*.png` to `output_dir`; the JSON's path."""
        folder = os.path.join(output_dir, "predictions")
        os.makedirs(folder, exist_ok=True)
        annotations = []
        for p in predictions:
            with atomic_open(os.path.join(folder, p["file_name"]), "wb") as f:
                f.write(p["png"])
            annotations.append({k: v for k, v in p.items() if k != "png"})
        data = {k: v for k, v in self._gt_json.items() if k != "annotations"}
        data["annotations"] = annotations
        path = os.path.join(output_dir, "predictions.json")
        with atomic_open(path, "w") as f:
            json.dump(data, f)
        return path

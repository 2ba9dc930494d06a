"""Evaluate a results file, or a model on a registered dataset.

  masktron eval --gt instances_val2017.json --results dets.json [--iou-type bbox segm keypoints]
  masktron eval --gt lvis_v1_val.json --results dets.json          (LVIS ground truth: LVIS AP)
  masktron eval --gt panoptic_val2017.json --results panoptic_pred.json [--gt-folder DIR]
  masktron eval --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml --weights model.pkl

Results files are COCO results (a JSON list of detections) or COCO panoptic predictions (a JSON
object with "annotations" and a PNG folder beside it, named like the file without ".json").
Figures are printed in Detectron2's tables, in percent; `--per-class` adds a per-category table
(AP, AP50, AP75, by size, AR, number of objects; worst first), `--plots DIR` writes
precision-recall curves as PNG (overall and one chart per category).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from masktron.cli.main import CommandError
from masktron.cli.run_config import add_override_arguments, build_config, collect_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    files = parser.add_argument_group("evaluate a results file")
    files.add_argument("--gt", metavar="JSON", help="COCO instances or panoptic ground truth")
    files.add_argument("--results", metavar="JSON", help="COCO results or panoptic predictions")
    files.add_argument(
        "--iou-type",
        nargs="+",
        choices=("bbox", "segm", "keypoints", "panoptic"),
        help="default: panoptic for panoptic files; else bbox, plus segm / keypoints when every "
        "result has masks / keypoints",
    )
    files.add_argument("--gt-folder", help="panoptic ground-truth PNGs (default: --gt minus .json)")
    files.add_argument(
        "--results-folder", help="panoptic prediction PNGs (default: --results minus .json)"
    )
    files.add_argument(
        "--backend",
        choices=("hotcoco", "pycocotools"),
        help="COCO AP engine (default: $MASKTRON_COCO_ENGINE, else hotcoco); same figures",
    )
    model = parser.add_argument_group("evaluate a model")
    model.add_argument("--config", help="config YAML file or model-zoo name")
    model.add_argument("--weights", help="checkpoint path or URL (default: the config's)")
    model.add_argument("--dataset", action="append", help="registered dataset (default: TEST)")
    model.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    model.add_argument("--output-dir", help="write results files (COCO JSON, panoptic PNGs) here")
    add_override_arguments(model)
    parser.add_argument("--output", metavar="JSON", help="also write the figures to this file")
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="print a per-category table: AP, AP50, AP75, APs/m/l, AR, objects (worst first)",
    )
    parser.add_argument(
        "--plots", metavar="DIR", help="write precision-recall curves (PNG) of each task here"
    )


def _print(results: dict[str, dict[str, Any]]) -> None:
    from masktron.evaluation.table import (
        create_small_table,
        panoptic_table,
        per_category_table,
    )

    for task, res in results.items():
        if task == "panoptic_seg" and "All" in res:  # pq_compute's layout
            print(f"Panoptic Evaluation Results:\n{panoptic_table(res)}\n")
            continue
        main = {k: v for k, v in res.items() if "-" not in k}
        ap = {k: v for k, v in main.items() if not k.startswith("AR")}
        ar = {k: v for k, v in main.items() if k.startswith("AR")}
        print(f"Evaluation results for {task}:\n{create_small_table(ap)}\n")
        if ar:
            print(f"{create_small_table(ar)}\n")
        for prefix in ("AP", "PQ", "IoU"):
            per_cat = {
                k[len(prefix) + 1 :]: v for k, v in res.items() if k.startswith(prefix + "-")
            }
            if per_cat:
                print(f"Per-category {task} {prefix}:\n{per_category_table(per_cat, prefix)}\n")


def _per_class(curves: dict[str, Any], table: bool, folder: str | None) -> None:
    from masktron.evaluation.plots import (
        per_category_detail_table,
        per_category_figures,
        save_pr_plots,
    )

    for task, (arrays, gt) in curves.items():
        if table:
            counts: dict[Any, int] = {}
            for ann in gt.dataset.get("annotations", []):
                if not ann.get("iscrowd", 0):
                    counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
            rows = per_category_figures(arrays, gt.cat_names, counts)
            print(
                f"Per-category {task} figures (worst first):\n{per_category_detail_table(rows)}\n"
            )
        if folder:
            paths = save_pr_plots(arrays, gt.cat_names, folder, task.replace("/", "_"))
            print(f"Precision-recall curves of {task}: {', '.join(paths)}")


def _eval_files(args: argparse.Namespace, curves: dict[str, Any]) -> dict[str, Any]:
    from masktron.evaluation import CocoGroundTruth, coco_evaluate, lvis_evaluate, pq_compute
    from masktron.evaluation.coco_checks import read_json

    results = read_json(args.results)
    panoptic = isinstance(results, dict) and "annotations" in results
    iou_types = args.iou_type
    if iou_types is None:
        iou_types = ["panoptic"] if panoptic else ["bbox"]
        if isinstance(results, list) and results:
            for task, key in (("segm", "segmentation"), ("keypoints", "keypoints")):
                if all(isinstance(r, dict) and key in r for r in results):
                    iou_types.append(task)
    if "panoptic" in iou_types:
        if len(iou_types) > 1 or not panoptic:
            raise CommandError("--iou-type panoptic needs panoptic predictions (a JSON object)")
        return {
            "panoptic_seg": pq_compute(args.gt, args.results, args.gt_folder, args.results_folder)
        }
    if panoptic:
        raise CommandError(f"{args.results} holds panoptic predictions; use --iou-type panoptic")
    gt = CocoGroundTruth.load(args.gt)
    cats = gt.dataset["categories"]
    lvis = bool(cats) and all("frequency" in c for c in cats)  # LVIS: rare/common/frequent
    out: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for iou in iou_types:
        if lvis:
            if iou == "keypoints":
                raise CommandError(f"{args.gt} is an LVIS ground truth: no keypoint AP")
            out[iou] = lvis_evaluate(gt, results, iou, arrays=arrays)
        else:
            out[iou] = coco_evaluate(gt, results, iou, backend=args.backend, arrays=arrays)
        curves[iou] = (arrays[iou], gt)
    return out


def _eval_model(args: argparse.Namespace, curves: dict[str, Any]) -> dict[str, Any]:
    import torch

    from masktron.checkpoint import DetectionCheckpointer
    from masktron.data import build_detection_test_loader
    from masktron.evaluation import build_evaluator, inference_on_dataset
    from masktron.modeling import build_model
    from masktron.models.precision import precision_dtype, prepare_for_inference
    from masktron.utils.env import set_float32_precision

    # "" as --weights builds the model without loading weights; a run folder's config.yaml
    # registers the datasets its training registered from files.
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    flags = {"MODEL.WEIGHTS": args.weights, "MODEL.DEVICE": device}
    cfg, _ = build_config(args.config, collect_overrides(args), flags)
    # As DefaultPredictor (masktron predict): FLOAT32_PRECISION, then MODEL.PRECISION checked
    # before building and applied once after loading, so the weights are rounded from the file's.
    set_float32_precision(cfg.FLOAT32_PRECISION)
    precision_dtype(cfg.MODEL.PRECISION, cfg.MODEL.DEVICE)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    prepare_for_inference(model.eval(), cfg.MODEL.PRECISION, channels_last=cfg.MODEL.CHANNELS_LAST)
    names = args.dataset or list(cfg.DATASETS.TEST)
    if not names:
        raise CommandError("no dataset: pass --dataset NAME or set DATASETS.TEST in the config")
    results: dict[str, Any] = {}
    for name in names:
        output_dir = os.path.join(args.output_dir, name) if args.output_dir else None
        loader = build_detection_test_loader(cfg, name)
        evaluator = build_evaluator(name, output_dir, tasks=_coco_tasks(cfg))
        for task, res in inference_on_dataset(model, loader, evaluator).items():
            key = task if len(names) == 1 else f"{name}/{task}"
            results[key] = res
        for one in getattr(evaluator, "_evaluators", [evaluator]):
            for task, arrays in getattr(one, "arrays", {}).items():
                curves[task if len(names) == 1 else f"{name}/{task}"] = (arrays, one._gt)
    return results


def _coco_tasks(cfg: Any) -> tuple[str, ...] | None:
    """bbox (and segm for mask models) tables even when a model finds nothing, as training's
    evaluation reports them; keypoint models: inferred from the predictions."""
    if cfg.MODEL.get("KEYPOINT_ON", False):
        return None
    return ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)


def run(args: argparse.Namespace) -> int:
    files_mode = args.gt is not None or args.results is not None
    if files_mode == (args.config is not None):
        args._parser.error("give either --gt and --results, or --config (with --weights)")
    if files_mode and (args.gt is None or args.results is None):
        args._parser.error("--gt and --results go together")
    if not files_mode:  # progress and timing on stderr; the tables once, below, on stdout
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
        for name in (
            "coco_evaluation",
            "lvis_evaluation",
            "panoptic_evaluation",
            "sem_seg_evaluation",
        ):
            logging.getLogger(f"masktron.evaluation.{name}").setLevel(logging.WARNING)
    curves: dict[str, Any] = {}  # task -> (accumulated arrays, its ground truth)
    results = _eval_files(args, curves) if files_mode else _eval_model(args, curves)
    _print(results)
    if args.per_class or args.plots:
        _per_class(curves, args.per_class, args.plots)
    if args.output:
        from masktron.utils.file_io import write_json

        write_json(args.output, results, indent=1)
    return 0

"""GPU throughput: masktron's Mask R-CNN R50-FPN vs torchvision's, inference and training.

Inference: images/s at each batch size (default 1 and 8) and precision (fp32, fp16, bf16; on a
CPU fp32 and bf16), both models on the same photos, resized once to the same size (shortest
side 800, longest at most 1333), 100 detections per image. masktron runs its batch through the
model (`model(list_of_inputs)`, as `DefaultPredictor` does per image) with `MODEL.PRECISION`;
torchvision runs fp32 or under `torch.autocast`. Every timing is checked: the low-precision
detections against the same model's fp32 ones (fraction matched at box IoU >= 0.9, same class),
and masktron's batch results against its batch-1 results.

Training: seconds per iteration and images/s of masktron's model vs torchvision's reference
recipe (`references/detection/train.py`: SGD, lr 0.02 x batch/16, momentum 0.9, weight decay
1e-4, `--amp` = fp16 autocast + GradScaler on CUDA) on the same images and annotations (the
COCO sample of ../shared/data, polygons rasterised to masks), same batch, same input size.

    python benchmarks/bench_gpu.py [--device cuda] [--batch-sizes 1,8] [--iters 20]
        [--train-iters 20] [--compile]
    python benchmarks/bench_gpu.py --device cpu --smoke     # tiny: proves the script runs

Ratios are torchvision / masktron time (> 1: masktron is faster), at each one's best precision
too. Weights: masktron loads the parity fixture when ../shared is present (else random);
torchvision's are random with its score threshold at 0, so both return 100 masks per image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_maskrcnn_cpu import DEFAULT_IMAGES, SHARED, fixture_pickle  # noqa: E402

from masktron import model_zoo  # noqa: E402
from masktron.config import get_cfg  # noqa: E402
from masktron.engine import DefaultPredictor  # noqa: E402
from masktron.models.build import build_model  # noqa: E402
from masktron.structures import BitMasks, Boxes, Instances, pairwise_iou  # noqa: E402
from masktron.structures.masks import polygons_to_bitmask  # noqa: E402

CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resized(rgb: np.ndarray, short: int, long: int) -> tuple[np.ndarray, float]:
    """The image resized as Detectron2's test resize does (shortest side `short`, longest at
    most `long`), and the scale used."""
    h, w = rgb.shape[:2]
    scale = min(short / min(h, w), long / max(h, w))
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)), scale


def landscape(rgb: np.ndarray, short: int) -> np.ndarray:
    """The photo stretched to `short` x 4/3 `short` (H x W): every image of a batch has one size,
    that of a typical 4:3 photo after the test resize."""
    size = (round(short * 4 / 3), short)
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def masktron_cfg(
    weights: str | None,
    device: str,
    precision: str,
    size: tuple[int, int],
    topk: int | None = None,
) -> Any:
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(CONFIG))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = weights or ""
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0 if weights is None else 0.05
    cfg.MODEL.PRECISION = precision
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = size
    cfg.FLOAT32_PRECISION = "highest"  # fp32 means fp32 (no TF32) for both implementations
    if topk is not None:
        cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = topk
    return cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(
    fn: Callable[[], Any], n_images: int, iters: int, device: torch.device, warmup: int = 2
) -> float:
    """Images per second of `fn` (one batch of `n_images`), median over `iters` calls after
    `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def agreement(ref: tuple[torch.Tensor, torch.Tensor], got: tuple[torch.Tensor, torch.Tensor]):
    """Fraction of `ref` detections (boxes, classes) with a same-class `got` box at IoU >= 0.9."""
    (rb, rc), (gb, gc) = ref, got
    if len(rb) == 0:
        return 1.0 if len(gb) == 0 else 0.0
    iou = pairwise_iou(Boxes(rb.float().cpu()), Boxes(gb.float().cpu()))
    iou[rc.cpu()[:, None] != gc.cpu()[None, :]] = 0
    return float((iou.max(dim=1).values >= 0.9).float().mean()) if len(gb) else 0.0


# --------------------------------------------------------------------------- inference
def inference_rows(args: argparse.Namespace, device: torch.device, rgbs: list[np.ndarray]):
    weights = None if args.smoke else fixture_pickle()
    h, w = rgbs[0].shape[:2]
    size = (min(h, w), max(h, w))
    precisions = ["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    proposals = {}
    if args.proposals is not None:
        proposals = {
            "rpn_pre_nms_top_n_test": args.proposals,
            "rpn_post_nms_top_n_test": args.proposals,
        }
    theirs = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        box_score_thresh=0.0,
        detections_per_img=100,
        min_size=size[0],
        max_size=size[1],
        **proposals,
    )
    theirs = theirs.eval().to(device)
    tv_images = [torch.from_numpy(x.copy()).permute(2, 0, 1).to(device) for x in rgbs]
    ours_inputs = [
        {"image": img.flip(0).float(), "height": img.shape[1], "width": img.shape[2]}
        for img in tv_images  # RGB (3, H, W) -> BGR, the config's INPUT.FORMAT
    ]
    results: dict[tuple[str, str, int], float] = {}
    checks: dict[tuple[str, str, int], str] = {}
    reference: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for precision in precisions:
        cfg = masktron_cfg(weights, str(device), precision, size, args.proposals)
        model = DefaultPredictor(cfg).model
        if args.compile:
            model.backbone = torch.compile(model.backbone)
        for batch in args.batch_sizes:
            images = [ours_inputs[i % len(ours_inputs)] for i in range(batch)]
            tv_batch = [tv_images[i % len(tv_images)].float() / 255.0 for i in range(batch)]

            @torch.inference_mode()
            def run_ours(images: list[dict[str, Any]] = images, model: Any = model) -> list[Any]:
                return [r["instances"] for r in model(images)]

            @torch.inference_mode()
            def run_theirs(tv_batch: list[torch.Tensor] = tv_batch, p: str = precision) -> Any:
                if p == "fp32":
                    return theirs(tv_batch)
                with torch.autocast(device.type, dtype=AUTOCAST[p]):
                    return theirs(tv_batch)

            for name, fn in (("masktron", run_ours), ("torchvision", run_theirs)):
                key = (name, precision, batch)
                results[key] = throughput(fn, batch, args.iters, device, args.warmup)
                out = fn()
                if name == "masktron":
                    dets = [(r.pred_boxes.tensor, r.pred_classes) for r in out]
                else:
                    dets = [(r["boxes"], r["labels"]) for r in out]
                base = reference.setdefault(f"{name}/{precision}", dets[:1])
                same = agreement(base[0], dets[0])
                fp32 = reference.get(f"{name}/fp32")
                vs32 = agreement(fp32[0], dets[0]) if fp32 else 1.0
                checks[key] = (
                    f"{len(dets[0])} dets; vs fp32 {vs32:.2f}; batch {batch} vs batch 1 {same:.2f}"
                )
    return results, checks, precisions


# --------------------------------------------------------------------------- training
def coco_training_data(short: int, long: int, count: int) -> list[dict[str, Any]]:
    """`count` COCO sample images with their non-crowd polygon objects, resized."""
    root = SHARED / "data" / "coco_sample"
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    cats = sorted(c["id"] for c in data["categories"])
    contiguous = {c: i for i, c in enumerate(cats)}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd") and isinstance(ann["segmentation"], list):
            by_image.setdefault(ann["image_id"], []).append(ann)
    out = []
    for info in data["images"]:
        anns = by_image.get(info["id"])
        if not anns:
            continue
        rgb = np.asarray(Image.open(root / "images" / "val2017" / info["file_name"]).convert("RGB"))
        image, scale = resized(rgb, short, long)
        h, w = image.shape[:2]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32) * scale
        boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY
        masks = np.stack(
            [
                polygons_to_bitmask([np.asarray(p) * scale for p in a["segmentation"]], h, w)
                for a in anns
            ]
        )
        labels = torch.tensor([contiguous[a["category_id"]] for a in anns])
        out.append({"rgb": image, "boxes": boxes, "labels": labels, "masks": masks})
        if len(out) == count:
            break
    return out


def training_rows(args: argparse.Namespace, device: torch.device, short: int, long: int):
    samples = coco_training_data(short, long, args.train_batch)
    while len(samples) < args.train_batch:
        samples = samples + samples
    samples = samples[: args.train_batch]
    amp = device.type == "cuda"  # the reference recipe's --amp (fp16) on GPUs
    lr = 0.02 * args.train_batch / 16

    cfg = masktron_cfg(None, str(device), "fp32", (short, long))
    ours = build_model(cfg).to(device).train()
    ours_inputs = []
    for s in samples:
        h, w = s["rgb"].shape[:2]
        instances = Instances(
            (h, w),
            gt_boxes=Boxes(s["boxes"].to(device)),
            gt_classes=s["labels"].to(device),
            gt_masks=BitMasks(torch.from_numpy(s["masks"]).to(device)),
        )
        image = torch.from_numpy(s["rgb"][:, :, ::-1].copy()).permute(2, 0, 1).float()
        ours_inputs.append({"image": image.to(device), "instances": instances})

    # As the reference trains it from an ImageNet backbone: FrozenBatchNorm, the stem and res2
    # frozen (3 trainable stages), as masktron's FREEZE_AT=2; random weights here.
    backbone = torchvision.models.detection.backbone_utils._resnet_fpn_extractor(
        torchvision.models.resnet50(norm_layer=torchvision.ops.FrozenBatchNorm2d), 3
    )
    theirs = torchvision.models.detection.MaskRCNN(
        backbone, num_classes=81, min_size=short, max_size=long
    )
    theirs = theirs.to(device).train()
    tv_images = [
        torch.from_numpy(s["rgb"].copy()).permute(2, 0, 1).float().div(255).to(device)
        for s in samples
    ]
    tv_targets = [
        {
            "boxes": s["boxes"].to(device),
            "labels": (s["labels"] + 1).to(device),  # torchvision's class 0 is background
            "masks": torch.from_numpy(s["masks"]).to(device, torch.uint8),
        }
        for s in samples
    ]

    def step_fn(model: torch.nn.Module, losses_of: Callable[[], dict[str, torch.Tensor]]):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)

        def step() -> float:
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = sum(losses_of().values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return float(loss.detach())

        return step

    steps = {
        "masktron": step_fn(ours, lambda: ours(ours_inputs)),
        "torchvision": step_fn(theirs, lambda: theirs(tv_images, tv_targets)),
    }
    seconds, losses = {}, {}
    for name, step in steps.items():
        per_iter = []
        for i in range(args.train_iters + args.warmup):
            sync(device)
            start = time.perf_counter()
            loss = step()
            sync(device)
            if i >= args.warmup:  # untimed warm-up iterations first
                per_iter.append(time.perf_counter() - start)
            if not np.isfinite(loss):
                raise RuntimeError(f"{name}: non-finite training loss {loss}")
        seconds[name], losses[name] = statistics.median(per_iter), loss
    return seconds, losses, amp


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--iters", type=int, default=20, help="timed inference calls")
    parser.add_argument("--train-iters", type=int, default=20, help="timed training steps")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="torch.compile masktron's backbone")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--warmup", type=int, default=2, help="untimed inference calls")
    parser.add_argument(
        "--proposals", type=int, help="RPN proposals per image at test time (default: 1000)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes and counts (a check that it runs)"
    )
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    short, long = 800, 1333
    if args.smoke:
        short, long = 96, 128
        args.batch_sizes = [1, 2]
        args.iters = args.train_iters = 1
        args.warmup, args.proposals = 0, 50
        args.train_batch = 2
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; torch {torch.__version__}, torchvision {torchvision.__version__}")

    paths = [SHARED / "data" / "images" / n for n in DEFAULT_IMAGES]
    rgbs = [landscape(np.asarray(Image.open(p).convert("RGB")), short) for p in paths]
    results, checks, precisions = inference_rows(args, device, rgbs)
    h, w = rgbs[0].shape[:2]
    print(f"\ninference, {w}x{h} input, images/s (higher is better)")
    print(f"{'batch':>5} {'precision':>9} {'masktron':>9} {'torchvision':>11} {'ratio':>6}  checks")
    for batch in args.batch_sizes:
        for p in precisions:
            ours, theirs = results[("masktron", p, batch)], results[("torchvision", p, batch)]
            print(
                f"{batch:>5} {p:>9} {ours:>9.2f} {theirs:>11.2f} {ours / theirs:>5.2f}x  "
                f"masktron: {checks[('masktron', p, batch)]} | "
                f"torchvision: {checks[('torchvision', p, batch)]}"
            )
        best_ours = max(results[("masktron", p, batch)] for p in precisions)
        best_theirs = max(results[("torchvision", p, batch)] for p in precisions)
        print(
            f"{batch:>5} {'best':>9} {best_ours:>9.2f} {best_theirs:>11.2f} "
            f"{best_ours / best_theirs:>5.2f}x"
        )

    if not args.skip_train:
        seconds, losses, amp = training_rows(args, device, short, long)
        ips = {k: args.train_batch / v for k, v in seconds.items()}
        print(
            f"\ntraining, batch {args.train_batch}, {'fp16 AMP' if amp else 'fp32'}: "
            f"masktron {seconds['masktron']:.3f} s/iter ({ips['masktron']:.2f} images/s), "
            f"torchvision {seconds['torchvision']:.3f} s/iter ({ips['torchvision']:.2f} images/s), "
            f"ratio {seconds['torchvision'] / seconds['masktron']:.2f}x; last losses "
            f"{losses['masktron']:.3f} / {losses['torchvision']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

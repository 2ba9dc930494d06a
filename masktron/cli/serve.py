r"""A local web page to label a folder of images with SAM, saved as COCO JSON to train on.

  masktron serve --checkpoint sam_vit_b_01ec64.pth --images photos/
  # open http://127.0.0.1:8000/ : click objects, accept them with a class; saved as you go
  masktron train --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \
      --coco-dataset mine photos/annotations.json photos/ DATASETS.TRAIN "('mine',)" \
      MODEL.ROI_HEADS.NUM_CLASSES 3 INPUT.MASK_FORMAT bitmask OUTPUT_DIR out

The masks are saved as COCO RLE, hence INPUT.MASK_FORMAT bitmask (as in Detectron2), or with
--mask-format polygon as outlines that the default config reads (holes filled).
Left-click adds a point on the object, right-click (or shift-click) a point off it, a drag
draws a box. --config/--weights add a "detect" button whose detections pre-fill the objects.
The labels are written (atomically) to --annotations after every change and read back when the
server starts again. The page and its API are served on 127.0.0.1 only, unless --host names
another address together with --allow-remote. Needs the `web` extra: pip install masktron[web].
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from typing import Any

from masktron.cli.main import CommandError

SAM_MODELS = ("vit_b", "vit_l", "vit_h", "default")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", default=".", help="the image folder (default: .)")
    parser.add_argument(
        "--checkpoint",
        help="SAM for clicks and boxes: a .pth file, a URL, or vit_b / vit_l / vit_h (Meta's "
        "checkpoint, downloaded once into the cache)",
    )
    parser.add_argument("--model", choices=SAM_MODELS, help="SAM variant (default: inferred)")
    parser.add_argument(
        "--annotations", help="the COCO JSON to read and write (default: IMAGES/annotations.json)"
    )
    parser.add_argument(
        "--mask-format",
        choices=("rle", "polygon"),
        default="rle",
        help="how masks are saved: rle (exact; train with INPUT.MASK_FORMAT bitmask) or polygon "
        "(region outlines, holes filled; Detectron2's default mask format reads them)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be a non-loopback address: anyone who reaches it can read the "
        "images and change the labels",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or mps (default: cuda if available)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=25.0, help="largest image upload (default 25 MB)"
    )
    detect = parser.add_argument_group("detect (pre-fill objects with a masktron detector)")
    detect.add_argument("--config", help="detector config: a YAML file or a model-zoo name")
    detect.add_argument("--weights", help="detector checkpoint (default: the zoo's weights)")
    detect.add_argument("--conf", type=float, default=0.5, help="minimum detection score")
    detect.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE", help="overrides"
    )
    auto = parser.add_argument_group("segment everything (SAM's automatic masks)")
    auto.add_argument("--points-per-side", type=int, default=32)
    auto.add_argument("--pred-iou-thresh", type=float, default=0.88)
    auto.add_argument("--stability-score-thresh", type=float, default=0.95)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(args: argparse.Namespace) -> Any:
    """The Starlette app for parsed arguments (models loaded, labels read)."""
    try:
        from masktron.web.app import create_app
    except ModuleNotFoundError as e:
        raise CommandError(
            f"masktron serve needs the web extra ({e.name} is missing): pip install 'masktron[web]'"
        ) from None
    from masktron.web.images import ImageFolder
    from masktron.web.models import Detector, check_file, load_sam
    from masktron.web.segmenter import Segmenter
    from masktron.web.store import AnnotationStore

    folder = ImageFolder(args.images, max_upload_bytes=int(args.max_upload_mb * 2**20))
    path = args.annotations or os.path.join(folder.root, "annotations.json")
    target_dir = os.path.dirname(os.path.abspath(path))
    if not os.access(target_dir, os.W_OK):
        raise CommandError(f"cannot write annotations into {target_dir}: pass --annotations")
    sizes = [(n, h, w) for n, (h, w) in folder.sizes.items()]
    store = AnnotationStore(path, sizes, mask_format=args.mask_format)
    segmenter = None
    if args.checkpoint:
        from masktron.model_zoo.sam_checkpoints import resolve_sam_checkpoint

        check_file(resolve_sam_checkpoint(args.checkpoint)[0], "--checkpoint")
        model = load_sam(args.checkpoint, args.model, args.device)
        auto = {
            "points_per_side": args.points_per_side,
            "pred_iou_thresh": args.pred_iou_thresh,
            "stability_score_thresh": args.stability_score_thresh,
        }
        segmenter = Segmenter(model, folder.pixels, auto_options=auto)
    detector = None
    if args.config:
        detector = Detector(
            args.config, weights=args.weights, confidence=args.conf, device=args.device,
            opts=args.opts,
        )  # fmt: skip
    hosts = ["*"] if args.allow_remote else None
    return create_app(folder, store, segmenter=segmenter, detector=detector, allowed_hosts=hosts)


def run(args: argparse.Namespace) -> int:
    if not _is_loopback(args.host) and not args.allow_remote:
        args._parser.error(
            f"--host {args.host} is not a loopback address: add --allow-remote to serve the "
            "images and labels to other machines"
        )
    if not args.checkpoint and not args.config:
        args._parser.error("give --checkpoint (SAM) and/or --config (a detector)")
    if not 0 <= args.port < 65536:
        args._parser.error(f"--port {args.port}: must be 0 to 65535")
    app = build_app(args)
    import uvicorn

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        raise CommandError(f"cannot listen on {args.host}:{args.port} ({e.strerror})") from None
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"masktron serve: open http://{shown}:{port}/ (Ctrl+C to stop)", flush=True)
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0

"""Latency of one click on `masktron serve`'s page, server side, on the CPU.

The server embeds the image once (SAM's ViT), then each click is a POST /api/decode: the prompt
encoder, the mask decoder, the upsampling to the image and the run-length encoding of the mask
for the page. This script times those requests through the real app (in-process, no network)
and, as the baseline in the same process, `SamPredictor.predict` alone for the same prompts:
the ratio is the server's overhead. SAM ViT-B/L/H share the same decoder, so the per-click time
does not depend on the variant; the weights are random (the time does not depend on them).

    python benchmarks/web_click_latency.py [--threads 2] [--clicks 20] [--model vit_b] [IMAGES...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from starlette.testclient import TestClient

from masktron.data import read_image
from masktron.models.sam import sam_model_registry
from masktron.predictors.sam_predictor import SamPredictor
from masktron.web.app import create_app
from masktron.web.images import ImageFolder
from masktron.web.segmenter import Segmenter
from masktron.web.store import AnnotationStore

SHARED = Path(os.environ.get("MASKTRON_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_IMAGES = ["coffee.png", "kite_and_cold.jpg"]


def clicks(width: int, height: int, count: int, seed: int = 0) -> list[dict]:
    """Prompts as a user makes them: 1 to 3 points, every third prompt with a box."""
    rng = np.random.default_rng(seed)
    prompts = []
    for k in range(count):
        n = 1 + k % 3
        points = [[float(rng.uniform(0, width)), float(rng.uniform(0, height)), int(i == 0 or
                   rng.integers(2))] for i in range(n)]  # fmt: skip
        box = None
        if k % 3 == 2:
            x0, y0 = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
            box = [float(x0), float(y0), float(x0 + width / 3), float(y0 + height / 3)]
        prompts.append({"points": points, "box": box})
    return prompts


def time_predict(predictor: SamPredictor, prompt: dict) -> float:
    """Milliseconds of `SamPredictor.predict` for one prompt, with the server's multimask rule."""
    pts = np.array([p[:2] for p in prompt["points"]])
    start = time.perf_counter()
    predictor.predict(
        point_coords=pts,
        point_labels=np.array([p[2] for p in prompt["points"]]),
        box=None if prompt["box"] is None else np.array(prompt["box"]),
        multimask_output=len(pts) == 1 and prompt["box"] is None,
    )
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", default=DEFAULT_IMAGES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = sam_model_registry[args.model]().eval()
    folder_path = tempfile.mkdtemp(prefix="masktron_web_bench_")
    try:
        for name in args.images:
            shutil.copy(SHARED / "data" / "images" / name, folder_path)
        folder = ImageFolder(folder_path, max_upload_bytes=1 << 20)
        store = AnnotationStore(
            os.path.join(folder_path, "labels.json"),
            [(n, h, w) for n, (h, w) in folder.sizes.items()],
        )
        app = create_app(folder, store, segmenter=Segmenter(model, folder.pixels))
        client = TestClient(app, base_url="http://127.0.0.1")
        headers = {"X-Masktron": "1"}
        print(f"SAM {args.model} (random weights), {args.threads} threads, {args.clicks} clicks")
        for name in args.images:
            h, w = folder.sizes[name]
            start = time.perf_counter()
            client.post("/api/embed", json={"image": name}, headers=headers).raise_for_status()
            embed_s = time.perf_counter() - start
            server, round_trip, direct = [], [], []
            # The baseline runs on a worker thread, as the server's handlers do (torch's thread
            # pool behaves differently on the main thread of a busy machine).
            worker = ThreadPoolExecutor(max_workers=1)
            predictor = SamPredictor(model)
            predictor.set_image(read_image(os.path.join(folder_path, name), format="RGB"))
            for prompt in clicks(w, h, args.clicks):
                start = time.perf_counter()
                reply = client.post("/api/decode", json={"image": name, **prompt}, headers=headers)
                round_trip.append(1000 * (time.perf_counter() - start))
                server.append(reply.json()["ms"])
                direct.append(worker.submit(time_predict, predictor, prompt).result())
            med = statistics.median
            print(
                f"{name} {w}x{h}: embedding {embed_s:.2f} s once; per click: decode "
                f"{med(server):.0f} ms, whole request {med(round_trip):.0f} ms (median); "
                f"SamPredictor.predict alone {med(direct):.0f} ms; "
                f"request/predict ratio {med(round_trip) / med(direct):.2f}"
            )
    finally:
        shutil.rmtree(folder_path, ignore_errors=True)


if __name__ == "__main__":
    main()

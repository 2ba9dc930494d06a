"""The HTTP API and the static page of `masktron serve` (Starlette; run by uvicorn).

Requests carry JSON only (or raw image bytes for an upload), never code or pickles. Bodies are
size-limited while they are read. Every request that changes something must carry the header
`X-Masktron: 1`, which a page of another site cannot send without the browser asking first
(CORS preflight, which this server never grants), and the `Host` must be the loopback address
unless the server was started with `--allow-remote`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from masktron.web.images import ImageFolder, ImageNotFound
from masktron.web.models import Detector
from masktron.web.segmenter import PromptError, Segmenter, parse_prompt
from masktron.web.store import AnnotationError, AnnotationStore, mask_runs

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_JSON_BYTES = 1 << 20  # prompts and class names are small
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (the declared
    length is checked first; the streamed bytes are counted too)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPError(413, f"request body over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPError(415, "send JSON with Content-Type: application/json")
    try:
        value = json.loads(await read_body(request, MAX_JSON_BYTES))
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"body is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "body must be a JSON object")
    return value


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise HTTPError(400, f"field {key!r} must be an integer, got {value!r}")
    return value


def _str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise HTTPError(400, f"field {key!r} must be a string, got {value!r}")
    return value


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Turn known errors into JSON `{"error": message}` with a fitting status, and require
    the `X-Masktron` header on every request that is not a GET."""

    async def wrapped(request: Request) -> Response:
        try:
            if request.method != "GET" and request.headers.get("x-masktron") != "1":
                raise HTTPError(403, "missing header X-Masktron: 1")
            return await handler(request)
        except HTTPError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except ImageNotFound as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except (AnnotationError, PromptError, ValueError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    return wrapped


class Api:
    """The handlers, sharing the folder, the labels and the models."""

    def __init__(
        self,
        folder: ImageFolder,
        store: AnnotationStore,
        segmenter: Segmenter | None,
        detector: Detector | None,
    ) -> None:
        self.folder, self.store = folder, store
        self.segmenter, self.detector = segmenter, detector

    def object_json(self, ann: dict[str, Any]) -> dict[str, Any]:
        mask = self.store.mask(ann)
        return {
            "id": ann["id"],
            "category_id": ann["category_id"],
            "bbox": ann["bbox"],
            "area": ann["area"],
            "prompt": ann.get("masktron_prompt"),
            "mask": {"size": list(mask.shape), "runs": mask_runs(mask)},
        }

    def _sam(self) -> Segmenter:
        if self.segmenter is None:
            raise HTTPError(409, "no SAM model: start the server with --checkpoint")
        return self.segmenter

    def _image(self, body: dict[str, Any]) -> str:
        name = _str(body, "image")
        self.folder.path(name)  # listed names only
        return name

    async def state(self, request: Request) -> Response:
        counts = {n: len(self.store.objects.get(n, [])) for n in self.folder.names}
        images = [
            {"name": n, "height": h, "width": w, "objects": counts[n]}
            for n, (h, w) in self.folder.sizes.items()
        ]
        return JSONResponse(
            {
                "images": images,
                "categories": self.store.categories,
                "annotations": self.store.path,
                "sam": self.segmenter is not None,
                "detector": self.detector is not None,
                "max_upload_bytes": self.folder.max_upload_bytes,
            }
        )

    async def image(self, request: Request) -> Response:
        data = await run_in_threadpool(self.folder.jpeg, request.path_params["name"])
        return Response(data, media_type="image/jpeg")

    async def thumbnail(self, request: Request) -> Response:
        data = await run_in_threadpool(self.folder.thumbnail, request.path_params["name"])
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=60"})

    async def embed(self, request: Request) -> Response:
        image = self._image(await read_json(request))
        seconds = await run_in_threadpool(self._sam().embed, image)
        return JSONResponse({"image": image, "ms": round(seconds * 1000, 1)})

    async def progress(self, request: Request) -> Response:
        return JSONResponse(self._sam().progress)

    async def decode(self, request: Request) -> Response:
        body = await read_json(request)
        image = self._image(body)
        h, w = self.folder.sizes[image]
        prompt = parse_prompt(body, h, w)
        mask, score, seconds = await run_in_threadpool(self._sam().decode, image, prompt)
        mask_json = {"size": list(mask.shape), "runs": mask_runs(mask)}
        return JSONResponse({"mask": mask_json, "score": score, "ms": round(seconds * 1000, 1)})

    async def objects(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.folder.path(name)
        anns = list(self.store.objects.get(name, []))
        objects = await run_in_threadpool(lambda: [self.object_json(a) for a in anns])
        return JSONResponse({"objects": objects})

    async def accept(self, request: Request) -> Response:
        """Store SAM's mask for the prompt as an object of a class (re-decoded here, so the
        saved mask is the model's, never a mask sent by the page)."""
        body = await read_json(request)
        image = self._image(body)
        h, w = self.folder.sizes[image]
        prompt = parse_prompt(body, h, w)
        category = _int(body, "category_id")
        replace = body.get("replace")
        if replace is not None:
            replace = _int(body, "replace")
        mask, score, _ = await run_in_threadpool(self._sam().decode, image, prompt)

        def store() -> dict[str, Any]:  # the JSON file is rewritten: off the event loop
            added = self.store.add(
                image, [mask], [category], prompts=[prompt], scores=[score], replace=replace
            )
            return self.object_json(added[0])

        return JSONResponse(await run_in_threadpool(store))

    async def change_object(self, request: Request) -> Response:
        object_id = int(request.path_params["id"])
        if request.method == "DELETE":
            await run_in_threadpool(self.store.delete, object_id)
        else:
            category = _int(await read_json(request), "category_id")
            await run_in_threadpool(self.store.set_category, object_id, category)
        return JSONResponse({"ok": True})

    async def undo(self, request: Request) -> Response:
        image = self._image(await read_json(request))
        return JSONResponse({"undone": await run_in_threadpool(self.store.undo, image)})

    async def segment_everything(self, request: Request) -> Response:
        body = await read_json(request)
        image, category = self._image(body), _int(body, "category_id")
        records = await run_in_threadpool(self._sam().segment_everything, image)
        prompts = [{"points": [[*r["point_coords"][0], 1]], "box": None} for r in records]
        added = await run_in_threadpool(
            self.store.add,
            image,
            [r["segmentation"] for r in records],
            [category] * len(records),
            prompts=prompts,
            scores=[r["predicted_iou"] for r in records],
        )
        return JSONResponse({"added": len(added)})

    async def detect(self, request: Request) -> Response:
        if self.detector is None:
            raise HTTPError(409, "no detector: start the server with --config (and --weights)")
        image = self._image(await read_json(request))
        pixels = await run_in_threadpool(self.folder.pixels, image)
        found = await run_in_threadpool(self.detector, pixels)
        added = await run_in_threadpool(
            self.store.add,
            image,
            [d["mask"] for d in found],
            [self.store.category_id(d["class_name"]) for d in found],
            prompts=[{"points": [], "box": d["box"]} for d in found],
            scores=[d["score"] for d in found],
        )
        return JSONResponse({"added": len(added)})

    async def add_category(self, request: Request) -> Response:
        category_id = self.store.category_id(_str(await read_json(request), "name"))
        return JSONResponse({"id": category_id, "categories": self.store.categories})

    async def change_category(self, request: Request) -> Response:
        category_id = int(request.path_params["id"])
        if request.method == "DELETE":
            self.store.delete_category(category_id)
        else:
            self.store.rename_category(category_id, _str(await read_json(request), "name"))
        return JSONResponse({"categories": self.store.categories})

    async def save(self, request: Request) -> Response:
        await run_in_threadpool(self.store.save)
        coco = self.store.coco()
        return JSONResponse(
            {
                "path": self.store.path,
                "images": len(coco["images"]),
                "annotations": len(coco["annotations"]),
            }
        )

    async def upload(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        data = await read_body(request, self.folder.max_upload_bytes)
        name = await run_in_threadpool(self.folder.add, name, data)
        h, w = self.folder.sizes[name]
        self.store.add_image(name, h, w)
        return JSONResponse({"name": name})


def create_app(
    folder: ImageFolder,
    store: AnnotationStore,
    *,
    segmenter: Segmenter | None = None,
    detector: Detector | None = None,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The Starlette app of the page and its API.

    Args:
        folder: the images (the only files the server reads for the page).
        store: where the objects are kept and saved.
        segmenter: SAM (None: no clicks, boxes or "segment everything").
        detector: the detector of "detect" (None: the button is off).
        allowed_hosts: accepted `Host` headers (default: loopback names only; ["*"] for any).
    """
    api = Api(folder, store, segmenter, detector)
    routes = [
        Route("/", lambda request: FileResponse(STATIC / "index.html")),
        Route("/api/state", endpoint(api.state)),
        Route("/api/image/{name:path}", endpoint(api.image)),
        Route("/api/thumbnail/{name:path}", endpoint(api.thumbnail)),
        Route("/api/objects/{name:path}", endpoint(api.objects)),
        Route("/api/progress", endpoint(api.progress)),
        Route("/api/embed", endpoint(api.embed), methods=["POST"]),
        Route("/api/decode", endpoint(api.decode), methods=["POST"]),
        Route("/api/accept", endpoint(api.accept), methods=["POST"]),
        Route("/api/object/{id:int}", endpoint(api.change_object), methods=["PATCH", "DELETE"]),
        Route("/api/undo", endpoint(api.undo), methods=["POST"]),
        Route("/api/segment-everything", endpoint(api.segment_everything), methods=["POST"]),
        Route("/api/detect", endpoint(api.detect), methods=["POST"]),
        Route("/api/categories", endpoint(api.add_category), methods=["POST"]),
        Route("/api/category/{id:int}", endpoint(api.change_category), methods=["PATCH", "DELETE"]),
        Route("/api/save", endpoint(api.save), methods=["POST"]),
        Route("/api/upload", endpoint(api.upload), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = allowed_hosts or LOCAL_HOSTS
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    return Starlette(routes=routes, middleware=middleware)

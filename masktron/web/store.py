"""The labels of an image folder as one COCO instances JSON: objects, classes, undo, autosave.

Every change is written to disk at once (atomically: a reader, or a server killed mid-write,
sees the previous file or the new one), so a closed tab or a killed server loses at most the
object being edited. The file is read back when the server starts again.

The JSON is plain COCO (`images`, `annotations` with compressed-RLE `segmentation`, XYWH `bbox`,
`area`, `iscrowd` 0, and `categories` numbered from 1), which `masktron train --coco-dataset`
and Detectron2's `register_coco_instances` read as is. Each annotation also keeps the prompt it
came from under `masktron_prompt` (COCO readers ignore unknown keys), so it can be edited later.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from masktron.utils.file_io import write_json
from masktron.web.polygons import mask_to_polygons

logger = logging.getLogger(__name__)

UNDO_DEPTH = 50  # undo steps kept per image


class AnnotationError(ValueError):
    """A request or a file that does not make a valid annotation (message says which field)."""


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool -> COCO compressed RLE with a str `counts`."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """COCO RLE (compressed or a counts list) or polygons -> (H, W) bool."""
    if isinstance(segmentation, list):  # polygons: their union, rasterised as COCO does
        if not segmentation:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def mask_runs(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of an (H, W) bool mask, starting with a run of False (maybe 0):
    the page paints the overlay from these without a PNG decoder."""
    flat = mask.reshape(-1)  # (H, W) -> (H*W,) in row-major order
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


class AnnotationStore:
    """Objects of every image of a folder, saved as COCO JSON after each change.

    Args:
        path: the COCO JSON file (read when it exists, then rewritten on each change).
        images: (file name relative to the folder, height, width) of the folder's images.
        mask_format: how new masks are saved: "rle" (exact) or "polygon" (the outline of each
            region; holes are filled), which Detectron2's default `INPUT.MASK_FORMAT` reads.
    """

    def __init__(
        self, path: str, images: Sequence[tuple[str, int, int]], *, mask_format: str = "rle"
    ) -> None:
        if mask_format not in ("rle", "polygon"):
            raise ValueError(f"mask_format must be 'rle' or 'polygon', got {mask_format!r}")
        self.path = path
        self.mask_format = mask_format
        self.lock = threading.RLock()
        self.images: dict[str, dict[str, Any]] = {}  # file name -> COCO image entry
        self.objects: dict[str, list[dict[str, Any]]] = {}  # file name -> COCO annotations
        self.categories: list[dict[str, Any]] = []
        self._undo: dict[str, list[list[dict[str, Any]]]] = {}
        self._next_object_id = 1
        if os.path.exists(path):
            self._load()
        for name, height, width in images:
            self.add_image(name, height, width)

    def add_image(self, name: str, height: int, width: int) -> None:
        """List an image of the folder (kept with its id when the JSON has it already)."""
        with self.lock:
            if name not in self.images:
                image_id = 1 + max((e["id"] for e in self.images.values()), default=0)
                self.images[name] = {
                    "id": image_id,
                    "file_name": name,
                    "height": height,
                    "width": width,
                }
            self.objects.setdefault(name, [])

    # ------------------------------------------------------------------ file
    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise AnnotationError(f"{self.path}: cannot read the annotations ({e})") from None

        def field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
            if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
                raise AnnotationError(f"{self.path}: {where}: missing or invalid field {key!r}")
            return obj[key]

        for i, cat in enumerate(field(data, "categories", list, "top level")):
            where = f"categories[{i}]"
            entry = {"id": field(cat, "id", int, where), "name": field(cat, "name", str, where)}
            self.categories.append(entry)
        by_id = {}
        for i, image in enumerate(field(data, "images", list, "top level")):
            where = f"images[{i}]"
            name = field(image, "file_name", str, where)
            field(image, "id", int, where)
            self.images[name] = dict(image)
            self.objects[name] = []
            by_id[image["id"]] = name
        category_ids = {c["id"] for c in self.categories}
        for i, ann in enumerate(field(data, "annotations", list, "top level")):
            where = f"annotations[{i}]"
            image_id = field(ann, "image_id", int, where)
            if image_id not in by_id:
                raise AnnotationError(f"{self.path}: {where}: image_id {image_id} is not an image")
            if field(ann, "category_id", int, where) not in category_ids:
                raise AnnotationError(f"{self.path}: {where}: unknown category_id")
            field(ann, "segmentation", (dict, list), where)
            self.objects[by_id[image_id]].append(dict(ann))
            self._next_object_id = max(self._next_object_id, field(ann, "id", int, where) + 1)
        count = sum(map(len, self.objects.values()))
        logger.info("%s: read %d objects of %d images", self.path, count, len(self.images))

    def coco(self) -> dict[str, Any]:
        """The whole dataset as a COCO instances dict."""
        with self.lock:
            images = sorted(self.images.values(), key=lambda e: e["id"])
            annotations = [a for e in images for a in self.objects.get(e["file_name"], [])]
            return {
                "info": {"description": "labelled with masktron serve"},
                "images": images,
                "annotations": annotations,
                "categories": list(self.categories),
            }

    def save(self) -> None:
        """Write the JSON atomically (called after every change)."""
        with self.lock:
            write_json(self.path, self.coco())

    # ------------------------------------------------------------ categories
    def category_id(self, name: str) -> int:
        """Id of the class `name`, added when new."""
        name = name.strip()
        if not name or len(name) > 100:
            raise AnnotationError("a class name needs 1 to 100 characters")
        with self.lock:
            for cat in self.categories:
                if cat["name"] == name:
                    return int(cat["id"])
            new_id = 1 + max((c["id"] for c in self.categories), default=0)
            self.categories.append({"id": new_id, "name": name})
            self.save()
            return new_id

    def rename_category(self, category_id: int, name: str) -> None:
        name = name.strip()
        with self.lock:
            if not name or any(c["name"] == name for c in self.categories):
                raise AnnotationError(f"class name {name!r} is empty or already used")
            self._category(category_id)["name"] = name
            self.save()

    def delete_category(self, category_id: int) -> None:
        with self.lock:
            self._category(category_id)
            used = sum(a["category_id"] == category_id for v in self.objects.values() for a in v)
            if used:
                raise AnnotationError(f"class {category_id} is used by {used} object(s)")
            self.categories = [c for c in self.categories if c["id"] != category_id]
            self.save()

    def _category(self, category_id: int) -> dict[str, Any]:
        for cat in self.categories:
            if cat["id"] == category_id:
                return cat
        raise AnnotationError(f"no class with id {category_id}")

    # --------------------------------------------------------------- objects
    def mask(self, ann: dict[str, Any]) -> np.ndarray:
        """(H, W) bool mask of an annotation of this store."""
        with self.lock:
            entry = next(e for e in self.images.values() if e["id"] == ann["image_id"])
        return decode_mask(ann["segmentation"], int(entry["height"]), int(entry["width"]))

    def image_of(self, object_id: int) -> str:
        with self.lock:
            for name, objects in self.objects.items():
                if any(a["id"] == object_id for a in objects):
                    return name
        raise AnnotationError(f"no object with id {object_id}")

    def _change(self, image: str) -> list[dict[str, Any]]:
        """The image's object list, after pushing a copy of it on the image's undo stack."""
        objects = self.objects[image]
        stack = self._undo.setdefault(image, [])
        stack.append(copy.copy(objects))
        del stack[:-UNDO_DEPTH]
        return objects

    def add(
        self,
        image: str,
        masks: Sequence[np.ndarray],
        category_ids: Sequence[int],
        *,
        prompts: Sequence[dict[str, Any] | None],
        scores: Sequence[float | None],
        replace: int | None = None,
    ) -> list[dict[str, Any]]:
        """Add objects to `image` (one undo step); `replace` names an object they replace."""
        with self.lock:
            entry = self.images[image]
            for cid in category_ids:
                self._category(cid)
            objects = self._change(image)
            if replace is not None:
                if not any(a["id"] == replace for a in objects):
                    self._undo[image].pop()
                    raise AnnotationError(f"no object {replace} on {image}")
                objects[:] = [a for a in objects if a["id"] != replace]
            added = []
            for mask, cid, prompt, score in zip(masks, category_ids, prompts, scores):
                rle = encode_mask(mask)
                segmentation: Any = rle
                if self.mask_format == "polygon":
                    segmentation = mask_to_polygons(mask)
                    if segmentation:  # area and box of what the polygons rasterise to
                        h, w = mask.shape
                        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
                ann = {
                    "id": self._next_object_id,
                    "image_id": entry["id"],
                    "category_id": int(cid),
                    "segmentation": segmentation,
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
                if prompt is not None:
                    ann["masktron_prompt"] = prompt
                if score is not None:
                    ann["score"] = float(score)
                self._next_object_id += 1
                objects.append(ann)
                added.append(ann)
            self.save()
            return added

    def set_category(self, object_id: int, category_id: int) -> None:
        with self.lock:
            self._category(category_id)
            image = self.image_of(object_id)
            objects = self._change(image)
            objects[:] = [
                {**a, "category_id": category_id} if a["id"] == object_id else a for a in objects
            ]
            self.save()

    def delete(self, object_id: int) -> None:
        with self.lock:
            image = self.image_of(object_id)
            objects = self._change(image)
            objects[:] = [a for a in objects if a["id"] != object_id]
            self.save()

    def undo(self, image: str) -> bool:
        """Revert the image's last change; False when there is none."""
        with self.lock:
            stack = self._undo.get(image)
            if not stack:
                return False
            self.objects[image] = stack.pop()
            self.save()
            return True

"""Folders of per-instance mask PNGs -> dataset dicts.

Two layouts (`layout=`):

"dsb2018" -- the 2018 Data Science Bowl stage-1 layout, one folder per image::

    root/<id>/images/<id>.png        the image (any extension PIL reads; exactly one file)
    root/<id>/masks/<anything>.png   one mask per instance

"images_masks" -- images side by side, masks in a folder named after each image's stem::

    root/images/<stem>.<ext>
    root/masks/<stem>/<anything>.png   (an image without a mask folder has no instances)

A mask is one instance: its non-zero pixels (any channel) are the object; it must have the
image's size; empty masks are skipped with a warning. Classes: with one class (the default,
`thing_classes=["object"]`) every mask is class 0; with several, a mask's file name must end
in `_<class name>.png` (e.g. `3_cat.png`). Masks become COCO RLE segmentations (`counts` as a
str) with their tight XYWH box; `image_id` is the image's position in sorted order.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image
from tqdm import tqdm

from masktron.data.catalog import DatasetCatalog, MetadataCatalog
from masktron.data.datasets.format_utils import DatasetFormatError
from masktron.data.image_io import ImageReadError, get_image_size
from masktron.structures import BoxMode

logger = logging.getLogger(__name__)

__all__ = ["load_png_mask_folder", "register_png_mask_instances"]

_LAYOUTS = ("dsb2018", "images_masks")


def _list_pngs(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(".png") and not f.startswith(".")
    )


def _pairs(root: str, layout: str) -> list[tuple[str, list[str]]]:
    """(image file, its mask files) for every image under `root`, sorted."""
    pairs = []
    if layout == "dsb2018":
        for sample in sorted(os.listdir(root)):
            folder = os.path.join(root, sample)
            if not os.path.isdir(folder) or sample.startswith("."):
                continue
            image_dir = os.path.join(folder, "images")
            images = sorted(os.listdir(image_dir)) if os.path.isdir(image_dir) else []
            images = [f for f in images if not f.startswith(".")]
            if len(images) != 1:
                raise DatasetFormatError(
                    f"{image_dir}: expected exactly one image file, found {len(images)}"
                )
            pairs.append((os.path.join(image_dir, images[0]), _list_pngs(f"{folder}/masks")))
    else:
        image_dir = os.path.join(root, "images")
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"{root}: no 'images' folder (layout 'images_masks')")
        for name in sorted(os.listdir(image_dir)):
            if name.startswith("."):
                continue
            stem = os.path.splitext(name)[0]
            masks = _list_pngs(os.path.join(root, "masks", stem))
            pairs.append((os.path.join(image_dir, name), masks))
    if not pairs:
        raise FileNotFoundError(f"{root}: no images found (layout {layout!r})")
    return pairs


def _read_mask(path: str, size: tuple[int, int], image_file: str) -> np.ndarray:
    try:
        with Image.open(path) as png:
            array = np.asarray(png)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read mask PNG ({e})") from e
    mask = array.any(axis=2) if array.ndim == 3 else array > 0
    if mask.shape != size:
        raise DatasetFormatError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
            f"{image_file} is {size[1]}x{size[0]}"
        )
    return mask


def _class_of(mask_file: str, classes: list[str]) -> int:
    if len(classes) == 1:
        return 0
    stem = os.path.splitext(os.path.basename(mask_file))[0]
    for i, name in enumerate(classes):
        if stem.endswith("_" + name):
            return i
    raise DatasetFormatError(
        f"{mask_file}: with several classes a mask's name must end in _<class>.png, "
        f"one of {classes}"
    )


def load_png_mask_folder(
    root: str | os.PathLike, layout: str = "dsb2018", thing_classes: list[str] | None = None
) -> list[dict]:
    """Read a folder of images and per-instance mask PNGs (see the module docstring)."""
    root = os.fspath(root)
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder not found: {root}")
    classes = list(thing_classes) if thing_classes else ["object"]
    records = []
    num_empty = 0
    for image_id, (image_file, mask_files) in enumerate(
        tqdm(_pairs(root, layout), desc=f"reading masks in {os.path.basename(root)}")
    ):
        height, width = get_image_size(image_file)
        annotations = []
        for mask_file in mask_files:
            mask = _read_mask(mask_file, (height, width), image_file)
            if not mask.any():
                num_empty += 1
                continue
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append(
                {
                    "bbox": mask_util.toBbox(rle).tolist(),
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
                    "category_id": _class_of(mask_file, classes),
                    "iscrowd": 0,
                }
            )
        records.append(
            {
                "file_name": image_file,
                "image_id": image_id,
                "height": height,
                "width": width,
                "annotations": annotations,
            }
        )
    if num_empty:
        logger.warning("%s: skipped %d empty mask files", root, num_empty)
    return records


def register_png_mask_instances(
    name: str, metadata: dict, root: str | os.PathLike, layout: str = "dsb2018"
) -> None:
    """Register a per-instance PNG folder; `metadata["thing_classes"]` names the classes.

    Masks are RLE: train with `INPUT.MASK_FORMAT = "bitmask"`.
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    classes = list(metadata.get("thing_classes") or ["object"])
    DatasetCatalog.register(name, lambda: load_png_mask_folder(root, layout, classes))
    MetadataCatalog.get(name).set(
        **{**metadata, "thing_classes": classes}, image_root=root, evaluator_type="coco"
    )

"""`Visualizer`: Detectron2's composite drawings (instances, semantic and panoptic segmentation,
dataset dicts) and the Segment Anything overlay, on numpy and Pillow only.

    v = Visualizer(im[:, :, ::-1], MetadataCatalog.get("coco_2017_val"), scale=1.2)
    v.draw_instance_predictions(outputs["instances"].to("cpu")).save("out.png")

Colours: in `ColorMode.IMAGE` (and IMAGE_BW) every class gets its own palette colour, jittered by
a seed derived from the class id, so all instances of a class share it on every image; in
`ColorMode.SEGMENTATION` classes take `metadata.thing_colors` as they are. Unlike Detectron2,
nothing is random: the same inputs always draw the same picture.
"""

from __future__ import annotations

from enum import Enum, unique
from typing import Any

import numpy as np
import torch

from masktron.structures import Boxes, BoxMode
from masktron.visualization.colormap import id_color
from masktron.visualization.mask_ops import VisMask, anchor_point, as_vis_masks
from masktron.visualization.painter import Painter
from masktron.visualization.segments import load_seg_file, panoptic_segments, to_label_map
from masktron.visualization.vis_image import (
    VisImage,
    change_brightness,
    readable_text_color,
    to_rgb,
)

__all__ = ["ColorMode", "VisImage", "Visualizer", "create_text_labels"]

_OFF_WHITE = np.array([255.0, 255.0, 240.0], dtype=np.float32)
_WHITE = np.array([255.0, 255.0, 255.0], dtype=np.float32)
_POSITIVE = np.array([0.0, 220.0, 0.0], dtype=np.float32)  # SAM's prompts: green ...
_NEGATIVE = np.array([230.0, 0.0, 0.0], dtype=np.float32)  # ... and red


@unique
class ColorMode(Enum):
    """How instances are coloured (Detectron2's values)."""

    IMAGE = 0  # a colour per class from the palette; masks at opacity 0.5
    SEGMENTATION = 1  # metadata.thing_colors per class; masks at opacity 0.8
    IMAGE_BW = 2  # as IMAGE, with everything outside the masks turned grey; opacity 0.3


def create_text_labels(
    classes: list[int] | None,
    scores: list[float] | None,
    class_names: list[str] | None,
    is_crowd: list[bool] | None = None,
) -> list[str] | None:
    """Labels "name 98%" (Detectron2's format); the class id when it has no name."""
    labels = None
    if classes is not None:
        names = class_names or []
        labels = [names[c] if 0 <= c < len(names) else str(c) for c in classes]
    if scores is not None:
        pct = [f"{s * 100:.0f}%" for s in scores]
        labels = pct if labels is None else [f"{l} {p}" for l, p in zip(labels, pct)]
    if labels is not None and is_crowd is not None:
        labels = [l + ("|crowd" if crowd else "") for l, crowd in zip(labels, is_crowd)]
    return labels


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class Visualizer(Painter):
    """Draw detection and segmentation results on an RGB image.

    Args:
        img_rgb: (H, W, 3) RGB, uint8 or float in [0, 255] (flip OpenCV's BGR first).
        metadata: class names and colours (`thing_classes`, `thing_colors`, `stuff_classes`,
            `stuff_colors`, `label_divisor`, `keypoint_names`, ...); a `Metadata` or a dict.
        scale: output size relative to the image.
        instance_mode: a `ColorMode`.
    """

    def __init__(
        self,
        img_rgb: Any,
        metadata: Any = None,
        scale: float = 1.0,
        instance_mode: ColorMode = ColorMode.IMAGE,
    ):
        super().__init__(img_rgb, metadata, scale)
        self._instance_mode = ColorMode(instance_mode)

    def _class_colors(self, classes: list[int], meta_key: str = "thing_colors") -> list:
        """One colour per class id: metadata colours in SEGMENTATION mode, else the palette."""
        table = self.metadata.get(meta_key)
        use_table = bool(table) and (
            self._instance_mode == ColorMode.SEGMENTATION or meta_key != "thing_colors"
        )
        return [
            np.asarray(table[c], dtype=np.float32)
            if use_table and 0 <= c < len(table)
            else id_color(c, jitter=self._instance_mode != ColorMode.SEGMENTATION)
            for c in classes
        ]

    def draw_instance_predictions(self, predictions: Any) -> VisImage:
        """Draw a model's `Instances`: `pred_boxes`, `scores`, `pred_classes`, `pred_masks`
        ((N, H, W) at the image size) and `pred_keypoints` ((N, K, 3)), each optional.
        """
        n = len(predictions)
        boxes = predictions.pred_boxes if predictions.has("pred_boxes") else None
        scores = _numpy(predictions.scores).tolist() if predictions.has("scores") else None
        classes = None
        if predictions.has("pred_classes"):
            classes = [int(c) for c in _numpy(predictions.pred_classes).reshape(-1)]
        labels = create_text_labels(classes, scores, self.metadata.get("thing_classes"))
        keypoints = None
        if predictions.has("pred_keypoints"):  # a tensor, or a structure holding one
            keypoints = getattr(predictions.pred_keypoints, "tensor", predictions.pred_keypoints)
        masks = None
        if predictions.has("pred_masks"):
            masks = as_vis_masks(predictions.pred_masks, *self._hw, "pred_masks")
        alpha = {ColorMode.SEGMENTATION: 0.8, ColorMode.IMAGE_BW: 0.3}.get(self._instance_mode, 0.5)
        if self._instance_mode == ColorMode.IMAGE_BW:
            keep = np.zeros(self.img.shape[:2], dtype=bool)
            for m in masks or []:
                keep |= m.bitmap
            self.output.grey_out(keep if masks is not None else None)
        colors = self._class_colors(classes) if classes is not None else None
        if colors is None:
            colors = [id_color(i) for i in range(n)]
        self._overlay(boxes, labels, masks, keypoints, colors, alpha)
        return self.output

    def overlay_instances(
        self,
        *,
        boxes: Any = None,
        labels: list[str] | None = None,
        masks: Any = None,
        keypoints: Any = None,
        assigned_colors: list | None = None,
        alpha: float = 0.5,
    ) -> VisImage:
        """Draw N instances, larger ones first; labels go on top of every mask.

        Args:
            boxes: `Boxes`, or (N, 4) XYXY (an (N, 5) rotated box is drawn as its enclosing box).
            labels: N strings, at each box's top-left corner (or on its mask when no boxes).
            masks: anything `as_vis_masks` reads: (N, H, W), BitMasks, polygons, RLE dicts.
            keypoints: (N, K, 3) x, y, score.
            assigned_colors: N colours (default: palette colours in turn).
        """
        vmasks = None if masks is None else as_vis_masks(masks, *self._hw, "masks")
        colors = None if assigned_colors is None else [to_rgb(c) for c in assigned_colors]
        self._overlay(boxes, labels, vmasks, keypoints, colors, alpha)
        return self.output

    def _overlay(
        self,
        boxes: Any,
        labels: list[str] | None,
        masks: list[VisMask] | None,
        keypoints: Any,
        colors: list | None,
        alpha: float,
    ) -> None:
        box_arr = None if boxes is None else _xyxy(boxes)
        sizes = {len(x) for x in (box_arr, labels, masks, colors) if x is not None}
        if keypoints is not None:
            keypoints = _numpy(keypoints).reshape(len(keypoints), -1, 3)  # (N, K, 3)
            sizes.add(len(keypoints))
        if len(sizes) > 1:
            raise ValueError(
                f"overlay_instances: boxes/labels/masks/colors differ in length {sizes}"
            )
        n = sizes.pop() if sizes else 0
        if n == 0:
            return
        colors = colors if colors is not None else [self._next_color() for _ in range(n)]
        if box_arr is not None:
            areas = (box_arr[:, 2] - box_arr[:, 0]) * (box_arr[:, 3] - box_arr[:, 1])
        elif masks is not None:
            areas = np.array([m.area() for m in masks])
        else:
            areas = np.zeros(n)
        order = np.argsort(-areas, kind="stable")  # larger first: small ones stay visible
        for i in order:
            if masks is not None:
                self._fill_mask(masks[i], colors[i], alpha)
            if box_arr is not None:
                self._stroke_box(box_arr[i], colors[i], 0.5)
        for i in order if labels is not None else []:
            self._instance_label(labels[i], colors[i], box_arr, masks, i)  # type: ignore[index]
        for kps in keypoints if keypoints is not None else []:
            self.draw_and_connect_keypoints(kps)

    def _instance_label(self, text: str, color: np.ndarray, boxes: Any, masks: Any, i: int):
        """Label at the box's top-left: just above it, or inside when the box meets the top."""
        h, w = self.img.shape[:2]
        text_color = readable_text_color(change_brightness(color, 0.7))
        if boxes is None:
            if masks is None or masks[i].area() == 0:
                return
            x, y = anchor_point(masks[i].bitmap)
            self._label(text, x, y, self._default_font_size, text_color, "center", "center")
            return
        x0, y0, x1, y1 = boxes[i]
        # Detectron2's size rule: taller boxes get larger text, within [0.6, 1] x default.
        height_ratio = (y1 - y0) / np.sqrt(h * w)
        font_size = (
            np.clip((height_ratio - 0.02) / 0.08 + 1, 1.2, 2) * 0.5 * self._default_font_size
        )
        _, label_h = self.output.label_size(text, font_size * self._px_per_pt)
        above = y0 * self.output.sy - label_h >= 0
        v_align = "bottom" if above else "top"
        self._label(text, max(x0, 0.0), max(y0, 0.0), font_size, text_color, "left", v_align)

    def draw_sem_seg(
        self, sem_seg: Any, area_threshold: float | None = None, alpha: float = 0.8
    ) -> VisImage:
        """Colour an (H, W) map of class ids with `metadata.stuff_colors`, labelled by
        `metadata.stuff_classes`; ids past the class list (255: ignore) are not drawn.
        """
        seg = to_label_map(sem_seg, self.img.shape[:2], "draw_sem_seg: sem_seg")
        ids, areas = np.unique(seg, return_counts=True)
        names = self.metadata.get("stuff_classes")
        ignore = self.metadata.get("ignore_label", 255)
        for label in ids[np.argsort(-areas, kind="stable")].tolist():
            if label < 0 or (names is not None and label >= len(names)) or label == ignore:
                continue
            text = names[label] if names is not None else str(label)
            color = self._class_colors([label], "stuff_colors")[0]
            self._draw_region(seg == label, color, _OFF_WHITE, text, alpha, area_threshold)
        return self.output

    def draw_panoptic_seg(
        self,
        panoptic_seg: Any,
        segments_info: list[dict] | None,
        area_threshold: float | None = None,
        alpha: float = 0.7,
    ) -> VisImage:
        """Draw an (H, W) map of segment ids: stuff first (stuff_classes/stuff_colors), then
        things as instances (thing_classes/thing_colors).

        Args:
            segments_info: dicts {"id", "isthing", "category_id", optional "score", "iscrowd"};
                ids missing from it are void. None: ids are `category * label_divisor +
                instance` (`metadata.label_divisor`), -1 void.
        """
        seg = to_label_map(panoptic_seg, self.img.shape[:2], "draw_panoptic_seg: panoptic_seg")
        segments = panoptic_segments(seg, segments_info, self.metadata)
        if self._instance_mode == ColorMode.IMAGE_BW:
            self.output.grey_out(np.isin(seg, [sid for sid, _ in segments]))
        things = []
        for sid, info in segments:
            cat = info["category_id"]
            if info["isthing"]:
                things.append((seg == sid, info))
                continue
            names = self.metadata.get("stuff_classes") or []
            text = names[cat] if 0 <= cat < len(names) else str(cat)
            color = self._class_colors([cat], "stuff_colors")[0]
            self._draw_region(seg == sid, color, _OFF_WHITE, text, alpha, area_threshold)
        if not things:
            return self.output
        cats = [info["category_id"] for _, info in things]
        scores = (
            [info["score"] for _, info in things] if all("score" in i for _, i in things) else None
        )
        crowd = [bool(info.get("iscrowd", 0)) for _, info in things]
        labels = create_text_labels(cats, scores, self.metadata.get("thing_classes"), crowd)
        table = self.metadata.get("thing_colors")
        colors = [
            np.asarray(table[c], np.float32) if table and c < len(table) else id_color(c, True)
            for c in cats
        ]
        h, w = self.img.shape[:2]
        masks = [VisMask(h, w, bitmap=m) for m, _ in things]
        self._overlay(None, labels, masks, None, colors, alpha)
        return self.output

    draw_panoptic_seg_predictions = draw_panoptic_seg  # Detectron2's older name

    def draw_dataset_dict(self, dic: dict) -> VisImage:
        """Draw one dataset dict: its `annotations` (bbox + bbox_mode, segmentation polygons or
        RLE, keypoints, category_id, iscrowd), `sem_seg`/`sem_seg_file_name`, and
        `pan_seg`/`pan_seg_file_name` + `segments_info`.
        """
        annos = dic.get("annotations")
        if annos:
            h, w = self.img.shape[:2]
            boxes = [_anno_box(a, i, w, h) for i, a in enumerate(annos)]
            masks = None
            if any("segmentation" in a for a in annos):
                masks = as_vis_masks(
                    [a.get("segmentation", []) for a in annos], h, w, "annotations.segmentation"
                )
            keypoints = None
            if "keypoints" in annos[0]:
                keypoints = np.array([a["keypoints"] for a in annos], dtype=np.float64)
            cats = [int(a["category_id"]) for a in annos]
            crowd = [bool(a.get("iscrowd", 0)) for a in annos]
            labels = create_text_labels(cats, None, self.metadata.get("thing_classes"), crowd)
            colors = self._class_colors(cats)
            self._overlay(np.array(boxes), labels, masks, keypoints, colors, 0.5)
        sem_seg = dic.get("sem_seg")
        if sem_seg is None and "sem_seg_file_name" in dic:
            sem_seg = load_seg_file(dic["sem_seg_file_name"], panoptic=False)
        if sem_seg is not None:
            self.draw_sem_seg(sem_seg, area_threshold=0, alpha=0.5)
        pan_seg = dic.get("pan_seg")
        if pan_seg is None and "pan_seg_file_name" in dic:
            pan_seg = load_seg_file(dic["pan_seg_file_name"], panoptic=True)
        if pan_seg is not None:
            if "segments_info" not in dic:
                raise ValueError("draw_dataset_dict: a panoptic dict needs 'segments_info'")
            self.draw_panoptic_seg(pan_seg, dic["segments_info"], area_threshold=0, alpha=0.5)
        return self.output

    def draw_sam_masks(
        self,
        masks: Any,
        point_coords: Any = None,
        point_labels: Any = None,
        boxes: Any = None,
        *,
        alpha: float = 0.5,
    ) -> VisImage:
        """Segment Anything's overlay: masks in distinct colours (larger first), prompt points
        as stars (label 1: green, 0: red; other labels, such as SAM's -1 padding, skipped)
        and prompt boxes in green.

        Args:
            masks: (N, H, W) or (H, W) bool masks at the image size.
            point_coords: (K, 2) xy image pixels. point_labels: (K,), default all 1.
            boxes: (M, 4) or (4,) XYXY image pixels.
        """
        arr = _numpy(masks)
        if arr.ndim == 2:
            arr = arr[None]  # (H, W) -> (1, H, W)
        vmasks = as_vis_masks(arr, *self._hw, "draw_sam_masks: masks")
        areas = np.array([m.area() for m in vmasks])
        for i in np.argsort(-areas, kind="stable"):
            self._fill_mask(vmasks[i], id_color(int(i)), alpha)
        if boxes is not None:
            for box in _numpy(boxes).reshape(-1, 4):  # (4,) or (M, 4) -> (M, 4)
                self._stroke_box(box, _POSITIVE, 1.0)
        if point_coords is not None:
            pts = _numpy(point_coords).astype(np.float64).reshape(-1, 2)  # (K, 2)
            lab = np.ones(len(pts)) if point_labels is None else _numpy(point_labels).reshape(-1)
            if len(lab) != len(pts):
                raise ValueError(f"draw_sam_masks: {len(pts)} points but {len(lab)} labels")
            for (x, y), label in zip(pts, lab):
                if label in (0, 1):
                    self._star(x, y, _POSITIVE if label == 1 else _NEGATIVE)
        return self.output

    def _star(self, x: float, y: float, color: np.ndarray) -> None:
        """A five-pointed star with a white rim, centred on (x, y) image pixels."""
        out = self.output
        radius = max(6.0, 0.02 * np.sqrt(out.out_height * out.out_width))
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (10, 2)
        unit[1::2] *= 0.45  # inner vertices
        centre = np.array([x * out.sx - 0.5, y * out.sy - 0.5])
        for r, c in ((radius * 1.35, _WHITE), (radius, color)):
            out.draw_shapes(centre + unit * r, 0, lambda d, p: d.polygon(p, fill=255), c, 1.0)


def _xyxy(boxes: Any) -> np.ndarray:
    """(N, 4) float64 XYXY from `Boxes`, a tensor, an array or a list."""
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    arr = _numpy(boxes).astype(np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim == 2 and arr.shape[1] == 5:  # rotated (xc, yc, w, h, angle): enclosing box
        arr = BoxMode.convert(arr, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) XYXY, got shape {arr.shape}")
    return arr


def _anno_box(anno: dict, i: int, width: int, height: int) -> list[float]:
    if "bbox" not in anno or "bbox_mode" not in anno:
        raise ValueError(f"draw_dataset_dict: annotations[{i}] needs 'bbox' and 'bbox_mode'")
    box = [float(v) for v in anno["bbox"]]
    mode = BoxMode(anno["bbox_mode"])
    if mode in (BoxMode.XYXY_REL, BoxMode.XYWH_REL):  # fractions of the image size
        box = [box[0] * width, box[1] * height, box[2] * width, box[3] * height]
        mode = BoxMode.XYXY_ABS if mode == BoxMode.XYXY_REL else BoxMode.XYWH_ABS
    return BoxMode.convert(box, mode, BoxMode.XYXY_ABS)

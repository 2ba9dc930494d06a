"""`Painter`: Detectron2's drawing primitives (`draw_text`, `draw_box`, `draw_binary_mask`, ...).

Coordinates given to the primitives are image pixels with edges at integers (pixel i spans
[i, i + 1)), as boxes are; sizes given in points follow Detectron2's (a figure at 100 dpi: one
point is 100/72 output pixels). Colours may be names, hex strings, unit or 0-255 triples
(`to_rgb`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from masktron.data.catalog import Metadata
from masktron.visualization.colormap import id_color
from masktron.visualization.mask_ops import VisMask, anchor_point, connected_components, erode
from masktron.visualization.vis_image import (
    VisImage,
    change_brightness,
    readable_text_color,
    to_rgb,
)

__all__ = ["Painter"]

_LARGE_MASK_AREA_THRESH = 120000  # px: such a piece of a mask gets its own label
_KEYPOINT_THRESHOLD = 0.05
_RED = np.array([255.0, 0.0, 0.0], dtype=np.float32)
_PX_PER_PT = 100.0 / 72.0  # matplotlib at Detectron2's 100 dpi


def as_image(img_rgb: Any, where: str = "Visualizer") -> np.ndarray:
    """An (H, W, 3) uint8 RGB copy of an image given as an array or tensor in [0, 255]."""
    if isinstance(img_rgb, torch.Tensor):
        img_rgb = img_rgb.detach().cpu().numpy()
    img = np.asarray(img_rgb)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)  # grey (H, W) -> (H, W, 3)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{where}: img_rgb must be an (H, W, 3) RGB image, got {img.shape}")
    img = np.nan_to_num(img[:, :, :3].astype(np.float32), nan=0.0)
    return np.clip(img, 0, 255).astype(np.uint8)


class Painter:
    """Draws primitives on a `VisImage`; `Visualizer` adds the composite drawings.

    Args:
        img_rgb: (H, W, 3) RGB image, uint8 or float in [0, 255] (array or tensor).
        metadata: a `Metadata` (or any object with `.get(key, default)`), or None.
        scale: output size relative to the image.
    """

    def __init__(self, img_rgb: Any, metadata: Any = None, scale: float = 1.0):
        self.img = as_image(img_rgb)
        self.metadata = metadata if metadata is not None else Metadata(name="__unnamed__")
        self.output = VisImage(self.img, scale=scale)
        h, w = self.img.shape[:2]
        self._hw: tuple[int, int] = (h, w)
        # Detectron2's size rule: grows with the image, never below 10 output points.
        self._default_font_size = max(math.sqrt(h * w) // 90, 10 // scale)
        self._px_per_pt = scale * _PX_PER_PT
        self._edge_px = max(1, int(round(self._default_font_size // 15 * self._px_per_pt)))
        self.keypoint_threshold = _KEYPOINT_THRESHOLD
        self._color_counter = 0

    def get_output(self) -> VisImage:
        return self.output

    def _next_color(self) -> np.ndarray:
        """Palette colours in turn, for drawings given no colour (deterministic)."""
        self._color_counter += 1
        return id_color(self._color_counter - 1)

    # ----- primitives ----------------------------------------------------------------------------
    def draw_text(
        self,
        text: str,
        position: tuple[float, float],
        *,
        font_size: float | None = None,
        color: Any = "g",
        horizontal_alignment: str = "center",
        rotation: float = 0,
        vertical_alignment: str = "top",
    ) -> VisImage:
        """Draw `text` on a dark translucent box, anchored at `position` (x, y) in image pixels.

        Args:
            font_size: in points (default: the image's default size); Detectron2's convention.
            color: text colour, brightened to read on the dark box.
            horizontal_alignment, vertical_alignment: which side of the text sits at `position`.
            rotation: degrees counter-clockwise.
        """
        size = self._default_font_size if font_size is None else font_size
        self.output.draw_label(
            str(text),
            position[0] * self.output.sx,
            position[1] * self.output.sy,
            size_px=size * self._px_per_pt,
            color=readable_text_color(to_rgb(color)),
            h_align=horizontal_alignment,
            v_align=vertical_alignment,
            rotation=rotation,
        )
        return self.output

    def draw_box(
        self, box_coord: Any, alpha: float = 0.5, edge_color: Any = "g", line_style: str = "-"
    ) -> VisImage:
        """Outline an (x0, y0, x1, y1) box; `line_style` "-" (solid) or "--" (dashed)."""
        self._stroke_box(box_coord, to_rgb(edge_color), alpha, dashed=line_style != "-")
        return self.output

    def _stroke_box(
        self, box_coord: Any, color: np.ndarray, alpha: float, dashed: bool = False
    ) -> None:
        """`draw_box` with a parsed 0-255 colour; the line width grows with the image."""
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box_coord, dtype=np.float64).reshape(4))
        width = max(1, int(round(max(self._default_font_size / 4, 1) * self._px_per_pt)))
        sx, sy = self.output.sx, self.output.sy
        self.output.stroke_rect((x0 * sx, y0 * sy, x1 * sx, y1 * sy), width, color, alpha, dashed)

    def draw_circle(self, circle_coord: Any, color: Any, radius: float = 3) -> VisImage:
        """A filled disk at (x, y) in image pixels; `radius` in image pixels."""
        x, y = (float(v) for v in np.asarray(circle_coord, dtype=np.float64).reshape(2))
        r = max(radius * self.output.scale, 1.0)
        cx, cy = x * self.output.sx - 0.5, y * self.output.sy - 0.5

        def disk(d: Any, pts: list) -> None:
            (ax, ay), (bx, by) = pts
            d.ellipse([ax, ay, bx, by], fill=255)

        corners = np.array([[cx - r, cy - r], [cx + r, cy + r]])
        self.output.draw_shapes(corners, 0, disk, to_rgb(color), 1.0)
        return self.output

    def draw_line(
        self,
        x_data: Any,
        y_data: Any,
        color: Any,
        linestyle: str = "-",
        linewidth: float | None = None,
    ) -> VisImage:
        """A polyline through (x_data[i], y_data[i]) image pixels; `linewidth` in points."""
        lw = max(self._default_font_size / 3, 1) if linewidth is None else linewidth
        width = max(1, int(round(lw * self._px_per_pt)))
        pts = np.stack([np.asarray(x_data, float), np.asarray(y_data, float)], axis=1)  # (K, 2)
        pts = pts * [self.output.sx, self.output.sy] - 0.5
        if linestyle != "-":
            pts_list = _dash(pts, dash=4.0 * width)
        else:
            pts_list = [pts]
        for seg in pts_list:

            def line(d: Any, p: list) -> None:
                d.line(p, fill=255, width=width, joint="curve")

            self.output.draw_shapes(seg, width, line, to_rgb(color), 1.0)
        return self.output

    def draw_polygon(
        self, segment: Any, color: Any, edge_color: Any = None, alpha: float = 0.5
    ) -> VisImage:
        """A filled polygon ((K, 2) xy image pixels) with an outline (default: darker colour)."""
        rgb = to_rgb(color)
        edge = change_brightness(rgb, -0.7) if edge_color is None else to_rgb(edge_color)
        pts = np.asarray(segment, dtype=np.float64).reshape(-1, 2)  # flat or (K, 2) -> (K, 2)
        pts = pts * [self.output.sx, self.output.sy] - 0.5
        if alpha > 0:
            self.output.draw_shapes(pts, 0, lambda d, p: d.polygon(p, fill=255), rgb, alpha)
        w = self._edge_px

        def outline(d: Any, p: list) -> None:
            d.line([*p, p[0]], fill=255, width=w, joint="curve")

        self.output.draw_shapes(pts, w, outline, edge, 1.0)
        return self.output

    def draw_binary_mask(
        self,
        binary_mask: Any,
        color: Any = None,
        *,
        edge_color: Any = None,
        text: str | None = None,
        alpha: float = 0.5,
        area_threshold: float | None = 10,
    ) -> VisImage:
        """Fill an (H, W) mask with `color` (default: the next palette colour) and outline it.

        Args:
            edge_color: outline colour (default: a darker `color`).
            text: drawn on the largest connected piece and on every piece over 120000 px.
            area_threshold: pieces (8-connected) smaller than this many pixels are not drawn.
        """
        if isinstance(binary_mask, torch.Tensor):
            binary_mask = binary_mask.detach().cpu().numpy()
        mask = np.asarray(binary_mask)
        if mask.shape != self.img.shape[:2]:
            raise ValueError(
                f"draw_binary_mask: mask shape {mask.shape} differs from the image's "
                f"{self.img.shape[:2]}"
            )
        rgb = self._next_color() if color is None else to_rgb(color)
        edge = None if edge_color is None else to_rgb(edge_color)
        self._draw_region(mask.astype(bool), rgb, edge, text, alpha, area_threshold)
        return self.output

    def draw_soft_mask(
        self, soft_mask: Any, color: Any = None, *, text: str | None = None, alpha: float = 0.5
    ) -> VisImage:
        """Blend `color` over the image with opacity `alpha * soft_mask` (Detectron2's method).

        Args:
            soft_mask: (H, W) floats in [0, 1], e.g. a mask probability map.
            color: default the next palette colour.
            text: drawn on the largest region where `soft_mask > 0.5`.
        """
        if isinstance(soft_mask, torch.Tensor):
            soft_mask = soft_mask.detach().cpu().numpy()
        mask = np.clip(np.asarray(soft_mask, dtype=np.float32), 0.0, 1.0)
        if mask.shape != self.img.shape[:2]:
            raise ValueError(
                f"draw_soft_mask: mask shape {mask.shape} differs from the image's "
                f"{self.img.shape[:2]}"
            )
        rgb = self._next_color() if color is None else to_rgb(color)
        out = self.output
        # (H, W) -> (out_h, out_w): each output pixel takes its nearest source pixel.
        coverage = mask[np.ix_(out._src_rows, out._src_cols)]
        out.blend(coverage, 0, 0, rgb, alpha)
        if text is not None:
            labels, areas = connected_components(mask > 0.5)
            if len(areas) > 1:
                largest = 1 + int(np.argmax(areas[1:]))
                x, y = anchor_point(labels == largest)
                text_color = readable_text_color(change_brightness(rgb, 0.7))
                self._label(text, x, y, self._default_font_size, text_color, "center", "center")
        return out

    # ----- shared by the composite drawings -------------------------------------------------------
    def _draw_region(
        self,
        mask: np.ndarray,
        color: np.ndarray,
        edge_color: np.ndarray | None,
        text: str | None,
        alpha: float,
        area_threshold: float | None,
    ) -> None:
        """`draw_binary_mask` on a parsed (H, W) bool mask and 0-255 colours."""
        if not mask.any():
            return
        if text is None and not area_threshold:
            self._fill_mask(VisMask(*mask.shape, bitmap=mask), color, alpha, edge_color)
            return
        labels, areas = connected_components(mask)
        keep = areas >= (area_threshold or 0)  # (K + 1,)
        keep[0] = False
        if not keep.any():
            return
        self._fill_mask(VisMask(*mask.shape, bitmap=keep[labels]), color, alpha, edge_color)
        if text is None:
            return
        kept = np.flatnonzero(keep)
        largest = kept[np.argmax(areas[kept])]
        text_color = readable_text_color(change_brightness(color, 0.7))
        for cid in kept:
            if cid == largest or areas[cid] > _LARGE_MASK_AREA_THRESH:
                x, y = anchor_point(labels == cid)
                self._label(text, x, y, self._default_font_size, text_color, "center", "center")

    def _fill_mask(
        self, mask: VisMask, color: np.ndarray, alpha: float, edge_color: np.ndarray | None = None
    ) -> None:
        """Blend a mask at `alpha` and outline it (default: a darker `color`) at full opacity."""
        rendered = mask.render(self.output)
        if rendered is None:
            return
        top, left, crop = rendered
        self.output.blend(crop, top, left, color, alpha)
        edge = change_brightness(color, -0.7) if edge_color is None else edge_color
        self.output.blend(crop & ~erode(crop, self._edge_px), top, left, edge, 1.0)

    def _label(
        self,
        text: str,
        x: float,
        y: float,
        font_size: float,
        color: np.ndarray,
        h_align: str,
        v_align: str,
    ) -> None:
        """A label at (x, y) image pixels, `font_size` in points, with a parsed colour."""
        sx, sy = self.output.sx, self.output.sy
        size_px = font_size * self._px_per_pt
        self.output.draw_label(
            text, x * sx, y * sy, size_px=size_px, color=color, h_align=h_align, v_align=v_align
        )

    def draw_and_connect_keypoints(self, keypoints: Any) -> VisImage:
        """One instance's (K, 3) keypoints (x, y, score): dots over the score threshold, joined
        by `metadata.keypoint_connection_rules` ((name_a, name_b, 0-255 colour) triples, names
        from `metadata.keypoint_names`); for person keypoints also nose -> mid-shoulder ->
        mid-hip, as Detectron2 draws the COCO skeleton.
        """
        if isinstance(keypoints, torch.Tensor):
            keypoints = keypoints.detach().cpu().numpy()
        kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)  # (K*3,) -> (K, 3)
        names = self.metadata.get("keypoint_names")
        visible = {
            (names[i] if names and i < len(names) else i): (x, y)
            for i, (x, y, p) in enumerate(kps)
            if p > self.keypoint_threshold
        }
        for a, b, rule_color in self.metadata.get("keypoint_connection_rules") or []:
            if a in visible and b in visible:
                (xa, ya), (xb, yb) = visible[a], visible[b]
                self.draw_line([xa, xb], [ya, yb], np.asarray(rule_color, np.float32) / 255.0)
        self._draw_person_spine(visible)
        for x, y in visible.values():
            self.draw_circle((x, y), _RED)
        return self.output

    def _draw_person_spine(self, visible: dict) -> None:
        """Nose to mid-shoulder and mid-shoulder to mid-hip, where those keypoints are seen."""
        if "left_shoulder" not in visible or "right_shoulder" not in visible:
            return
        shoulder = (np.asarray(visible["left_shoulder"]) + visible["right_shoulder"]) / 2
        if "nose" in visible:
            nose = visible["nose"]
            self.draw_line([nose[0], shoulder[0]], [nose[1], shoulder[1]], _RED)
        if "left_hip" in visible and "right_hip" in visible:
            hip = (np.asarray(visible["left_hip"]) + visible["right_hip"]) / 2
            self.draw_line([hip[0], shoulder[0]], [hip[1], shoulder[1]], _RED)


def _dash(pts: np.ndarray, dash: float) -> list[np.ndarray]:
    """Split a (K, 2) polyline into (2, 2) dashes of length `dash` with equal gaps."""
    out = []
    for a, b in zip(pts[:-1], pts[1:]):
        length = float(np.hypot(*(b - a)))
        for t0 in np.arange(0.0, length, 2 * dash):
            t1 = min(t0 + dash, length)
            out.append(np.stack([a + (b - a) * t0 / length, a + (b - a) * t1 / length]))
    return out

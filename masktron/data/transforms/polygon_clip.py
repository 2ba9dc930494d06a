"""Clip a polygon to an axis-aligned rectangle (Sutherland-Hodgman), for crops of polygon masks."""

from __future__ import annotations

import numpy as np


def _clip_half_plane(points: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """Keep the part of a closed polygon where `points[:, axis]` is <= bound (or >= bound).

    Args:
        points: (K, 2) float64 (x, y) vertices of a closed polygon (last joins first).

    Returns:
        (K', 2) vertices of the clipped polygon (K' may be 0).
    """
    if len(points) == 0:
        return points
    values = points[:, axis]
    inside = values <= bound if keep_below else values >= bound
    out: list[np.ndarray] = []
    previous, previous_inside = points[-1], inside[-1]
    for current, current_inside in zip(points, inside):
        if current_inside != previous_inside:
            # The edge crosses the boundary: add the crossing point.
            t = (bound - previous[axis]) / (current[axis] - previous[axis])
            crossing = previous + t * (current - previous)
            crossing[axis] = bound  # exact, against rounding
            out.append(crossing)
        if current_inside:
            out.append(current)
        previous, previous_inside = current, current_inside
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def clip_polygon_to_box(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of a polygon inside `box`.

    Args:
        points: (K, 2) (x, y) vertices, any orientation; convex or not.
        box: (x0, y0, x1, y1) window.

    Returns:
        (K', 2) float64 vertices; fewer than 3 means nothing of area is left. Consecutive
        duplicate vertices are removed.
    """
    x0, y0, x1, y1 = box
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = _clip_half_plane(pts, 0, x0, keep_below=False)
    pts = _clip_half_plane(pts, 0, x1, keep_below=True)
    pts = _clip_half_plane(pts, 1, y0, keep_below=False)
    pts = _clip_half_plane(pts, 1, y1, keep_below=True)
    if len(pts) > 1:
        # Drop repeated consecutive vertices (including last == first).
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
        pts = pts[keep] if keep.any() else pts[:1]
    if len(pts) >= 3 and _area(pts) == 0.0:
        return pts[:0]
    return pts


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))

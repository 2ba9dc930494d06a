"""Masks as COCO polygons: the outline of each connected region, traced along pixel edges.

A polygon that runs along the pixel edges contains exactly the centres of the region's pixels,
so rasterising it again (COCO's rule) gives the region back. COCO polygons cannot hold holes:
a hole inside a region is filled (its outline is dropped), the one loss of this format.
"""

from __future__ import annotations

import numpy as np

# Unit steps along the pixel edges, in (x, y) with y down, clockwise on screen.
_RIGHT, _DOWN, _LEFT, _UP = (1, 0), (0, 1), (-1, 0), (0, -1)


def _boundary_edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Directed pixel edges between a region and the background, keyed by their start corner.

    Each region pixel contributes the sides that face the background, oriented clockwise
    around the pixel, so outer outlines run clockwise and holes counter-clockwise.
    """
    padded = np.pad(mask.astype(bool), 1)
    inside = padded[1:-1, 1:-1]
    sides = {
        _RIGHT: inside & ~padded[:-2, 1:-1],  # top side: background above
        _DOWN: inside & ~padded[1:-1, 2:],  # right side: background to the right
        _LEFT: inside & ~padded[2:, 1:-1],  # bottom side: background below
        _UP: inside & ~padded[1:-1, :-2],  # left side: background to the left
    }
    start_offset = {_RIGHT: (0, 0), _DOWN: (1, 0), _LEFT: (1, 1), _UP: (0, 1)}
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for step, where in sides.items():
        ys, xs = np.nonzero(where)
        dx, dy = start_offset[step]
        for x, y in zip((xs + dx).tolist(), (ys + dy).tolist()):
            edges.setdefault((x, y), []).append(step)
    return edges


def _turn_order(step: tuple[int, int]) -> list[tuple[int, int]]:
    """Next steps to try after `step`: right turn first (keeps diagonal touches apart)."""
    dx, dy = step
    return [(-dy, dx), (dx, dy), (dy, -dx)]  # right, straight, left (y down)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """(H, W) bool -> COCO polygons `[[x0, y0, x1, y1, ...], ...]` in pixel-edge coordinates,
    one per connected region (8-connected regions touching at a corner become separate
    polygons), holes filled, collinear corners dropped."""
    edges = _boundary_edges(mask)
    polygons = []
    while edges:
        start = next(iter(edges))
        point, step = start, edges[start][0]
        loop: list[tuple[int, int]] = []
        while True:
            steps = edges[point]
            steps.remove(step)
            if not steps:
                del edges[point]
            loop.append(point)
            point = (point[0] + step[0], point[1] + step[1])
            if point == start:
                break
            options = edges[point]  # a closed boundary always continues
            step = next(s for s in _turn_order(step) if s in options)
        corners = [
            p
            for i, p in enumerate(loop)
            if _direction(loop[i - 1], p) != _direction(p, loop[(i + 1) % len(loop)])
        ]
        area2 = sum(
            x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1])
        )
        if area2 > 0 and len(corners) >= 3:  # clockwise on screen: an outer outline
            polygons.append([float(v) for p in corners for v in p])
    return polygons


def _direction(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (int(np.sign(b[0] - a[0])), int(np.sign(b[1] - a[1])))

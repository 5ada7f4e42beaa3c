"""Shared by the tests/test_geometry_*.py modules: a reference locator, flat polygons, test cells."""

from __future__ import annotations

import numpy as np

from engine import geometry as geo


def reference_locate(px: float, py: float, xy: np.ndarray, offsets: np.ndarray) -> int:
    """Slow, obvious ray casting: the first polygon (by id) whose ring the point is inside."""
    for p in range(len(offsets) - 1):
        ring = xy[offsets[p] : offsets[p + 1]].tolist()
        inside = False
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i]
            xj, yj = ring[j]
            if (yi > py) != (yj > py):
                if px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                    inside = not inside
            j = i
        if inside:
            return p
    return -1


def flat(polys):
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in polys])]).astype(np.int64)
    return np.concatenate(polys).astype(np.float64), offsets


SQUARE = np.array([[0.0, 0.0], [1000.0, 0.0], [1000.0, 1000.0], [0.0, 1000.0]])


def random_cells(n: int, seed: int):
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(1.0, 999.0, (n, 2))
    return seeds, *geo.voronoi_cells(seeds, SQUARE)

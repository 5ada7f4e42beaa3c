"""Voronoi tiling of a convex boundary (:func:`voronoi_cells`), with per-edge neighbour labels."""

from __future__ import annotations

import math

import numpy as np

from engine.geometry.edges import EDGE_TOL_M
from engine.geometry.polygons import polygon_areas


def _clip(xs, ys, ls, a, b, c, label):
    """Clip a convex ring to ``a*x + b*y <= c``; the new edge gets ``label``."""
    s = [a * x + b * y - c for x, y in zip(xs, ys)]
    if max(s) <= 0.0:
        return xs, ys, ls
    ox: list = []
    oy: list = []
    ol: list = []
    n = len(xs)
    for k in range(n):
        k1 = k + 1 if k + 1 < n else 0
        sk = s[k]
        sn = s[k1]
        if sk <= 0.0:
            ox.append(xs[k])
            oy.append(ys[k])
            ol.append(ls[k])
            if sn > 0.0:
                t = sk / (sk - sn)
                ox.append(xs[k] + t * (xs[k1] - xs[k]))
                oy.append(ys[k] + t * (ys[k1] - ys[k]))
                ol.append(label)
        elif sn <= 0.0:
            t = sk / (sk - sn)
            ox.append(xs[k] + t * (xs[k1] - xs[k]))
            oy.append(ys[k] + t * (ys[k1] - ys[k]))
            ol.append(ls[k])
    return ox, oy, ol


def _drop_short_edges(xs, ys, ls, tol):
    """Remove edges shorter than ``tol`` (the edge before it absorbs the gap)."""
    n = len(xs)
    tol2 = tol * tol
    keep = []
    for k in range(n):
        k1 = k + 1 if k + 1 < n else 0
        dx = xs[k1] - xs[k]
        dy = ys[k1] - ys[k]
        if dx * dx + dy * dy >= tol2:
            keep.append(k)
    if len(keep) == n:
        return xs, ys, ls
    return [xs[k] for k in keep], [ys[k] for k in keep], [ls[k] for k in keep]


class _SeedGrid:
    """Seeds hashed on a uniform grid, to list the seeds within a radius of a point in order."""

    def __init__(self, seeds: np.ndarray, spacing: float):
        self.h = float(spacing)
        self.x0 = float(seeds[:, 0].min())
        self.y0 = float(seeds[:, 1].min())
        ix = np.floor((seeds[:, 0] - self.x0) / self.h).astype(np.int64)
        iy = np.floor((seeds[:, 1] - self.y0) / self.h).astype(np.int64)
        self.nx = int(ix.max()) + 1
        self.ny = int(iy.max()) + 1
        self.ix = ix.tolist()
        self.iy = iy.tolist()
        cells: dict = {}
        for k, key in enumerate((iy * self.nx + ix).tolist()):
            cells.setdefault(key, []).append(k)
        self.cells = cells
        self.sx = seeds[:, 0].tolist()
        self.sy = seeds[:, 1].tolist()

    def within(self, i: int, ring_lo: int, ring_hi: int) -> list:
        """Seeds in the square rings ``ring_lo..ring_hi`` (in cells) around seed ``i``'s cell.

        Returns ``(d2, j)`` pairs sorted, excluding ``i``. Together, rings ``0..m`` hold every
        seed within ``m * h`` of seed ``i``.
        """
        cx, cy = self.ix[i], self.iy[i]
        px, py = self.sx[i], self.sy[i]
        out = []
        cells = self.cells
        for gy in range(max(0, cy - ring_hi), min(self.ny, cy + ring_hi + 1)):
            dy = abs(gy - cy)
            for gx in range(max(0, cx - ring_hi), min(self.nx, cx + ring_hi + 1)):
                if max(dy, abs(gx - cx)) < ring_lo:
                    continue
                for j in cells.get(gy * self.nx + gx, ()):
                    if j != i:
                        a = self.sx[j] - px
                        b = self.sy[j] - py
                        out.append((a * a + b * b, j))
        out.sort()
        return out


def voronoi_cells(
    seeds: np.ndarray, boundary: np.ndarray, *, tol: float = EDGE_TOL_M
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voronoi cells of ``seeds`` clipped to a convex ``boundary``.

    Each cell starts as the boundary and is clipped by the bisector half-planes of the other
    seeds, nearest first, stopping once the next seed is farther than twice the cell's farthest
    vertex (no farther bisector can reach the cell). Seeds are found on a uniform hash grid,
    ring by ring, so the work per cell does not grow with the number of seeds. The cells tile
    the boundary.

    Parameters
    ----------
    seeds : ndarray, shape (n, 2)
        Distinct points strictly inside ``boundary``.
    boundary : ndarray, shape (m, 2)
        Convex polygon, counter-clockwise.
    tol : float
        Edges shorter than this are merged away.

    Returns
    -------
    xy : ndarray of float64, shape (total_vertices, 2)
    offsets : ndarray of int64, shape (n + 1,)
    edge_nbr : ndarray of int64, shape (total_vertices,)
        For the edge starting at each vertex, the seed whose bisector made it, or -1 for a
        boundary edge.

    Examples
    --------
    >>> import numpy as np
    >>> sq = np.array([[0., 0.], [2., 0.], [2., 2.], [0., 2.]])
    >>> xy, off, nbr = voronoi_cells(np.array([[0.5, 1.0], [1.5, 1.0]]), sq)
    >>> off.tolist(), nbr.tolist()
    ([0, 4, 8], [-1, 1, -1, -1, -1, -1, -1, 0])
    """
    seeds = np.asarray(seeds, dtype=np.float64).reshape(-1, 2)
    boundary = np.asarray(boundary, dtype=np.float64)
    n = len(seeds)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    area = abs(float(polygon_areas(boundary, np.array([0, len(boundary)]))[0]))
    spacing = max(math.sqrt(area / n), 1e-12)
    h = 2.0 * spacing  # ~4 seeds per hash cell; rings 0..1 cover 2 spacings, enough for most cells
    grid = _SeedGrid(seeds, h)
    max_ring = max(grid.nx, grid.ny)
    bx = boundary[:, 0].tolist()
    by = boundary[:, 1].tolist()
    m = len(bx)
    all_x: list = []
    all_y: list = []
    all_l: list = []
    counts = np.zeros(n, dtype=np.int64)
    sx, sy = grid.sx, grid.sy
    for i in range(n):
        px, py = sx[i], sy[i]
        xs = [x - px for x in bx]
        ys = [y - py for y in by]
        ls = [-1] * m
        r2 = max(x * x + y * y for x, y in zip(xs, ys))
        lo, hi = 0, 1
        pending: list = []
        while True:
            # rings 0..hi hold every seed within rho; farther ones wait in `pending`
            rho2 = (hi * h) ** 2 if hi < max_ring else math.inf
            cand = grid.within(i, lo, hi)
            if pending:
                cand = sorted(pending + cand)
                pending = []
            stop = False
            for t, (d2, j) in enumerate(cand):
                if d2 > rho2:
                    pending = cand[t:]
                    break
                if d2 > 4.0 * r2:  # this and every later seed is too far to cut the cell
                    stop = True
                    break
                xs, ys, ls = _clip(xs, ys, ls, sx[j] - px, sy[j] - py, 0.5 * d2, j)
                r2 = max(x * x + y * y for x, y in zip(xs, ys))
            if stop or 4.0 * r2 <= rho2:
                break
            lo, hi = hi + 1, hi + 1
        xs, ys, ls = _drop_short_edges(xs, ys, ls, tol)
        all_x.extend(x + px for x in xs)
        all_y.extend(y + py for y in ys)
        all_l.extend(ls)
        counts[i] = len(xs)
    xy = np.column_stack([np.asarray(all_x, dtype=np.float64), np.asarray(all_y, dtype=np.float64)])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return xy.reshape(-1, 2), offsets, np.asarray(all_l, dtype=np.int64)

"""Planar geometry for the city model: polygons, Voronoi tiling, adjacency, point location.

Everything works on metric coordinates (metres in the city's local projection). Polygons are
stored flat, the way the kernels want them: ``xy`` is a ``(total_vertices, 2)`` float64 array
and ``offsets`` an int64 array of length ``n + 1`` so that polygon ``i`` is
``xy[offsets[i]:offsets[i + 1]]`` (counter-clockwise, ring not closed). An optional int64
``edge_nbr`` array aligned with ``xy`` says, for the edge that starts at each vertex, which
polygon lies on the other side (``-1`` for the outer boundary).

The only hot loop is point location (:func:`locate_points`, a numba kernel over a coarse bucket
grid); the Voronoi construction is plain Python over small per-cell vertex lists.

>>> import numpy as np
>>> square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
>>> xy, off, nbr = voronoi_cells(np.array([[0.5, 1.0], [1.5, 1.0]]), square)
>>> polygon_areas(xy, off).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from engine.config import njit

#: Edges shorter than this (metres) are merged away when cells are built, so no polygon carries
#: a numerically degenerate edge; shared edges are matched geometrically at half this length.
EDGE_TOL_M = 1e-3

__all__ = [
    "EDGE_TOL_M",
    "BucketIndex",
    "adjacency_from_edges",
    "convex_hull",
    "convex_simple_mask",
    "csr_from_pairs",
    "kmeans",
    "grow_regions",
    "locate_points",
    "match_shared_edges",
    "points_in_convex",
    "polygon_areas",
    "polygon_centroids",
    "polygon_problem",
    "sample_in_polygons",
    "voronoi_cells",
]


# --------------------------------------------------------------------------- polygon measures


def _next_index(offsets: np.ndarray) -> np.ndarray:
    """Index of the following vertex within the same ring, for every vertex."""
    total = int(offsets[-1])
    nxt = np.arange(1, total + 1, dtype=np.int64)
    counts = np.diff(offsets)
    last = offsets[1:][counts > 0] - 1
    nxt[last] = offsets[:-1][counts > 0]
    return nxt


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per polygon (0 for an empty polygon), in a fixed order."""
    csum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    return csum[offsets[1:]] - csum[offsets[:-1]]


def polygon_areas(xy: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Signed area of every polygon (positive when counter-clockwise), shoelace formula.

    Coordinates are taken relative to each polygon's first vertex, which keeps the result
    accurate far from the origin.

    Parameters
    ----------
    xy : ndarray, shape (total_vertices, 2)
        Flat vertex array.
    offsets : ndarray of int64, shape (n + 1,)
        Polygon ``i`` is ``xy[offsets[i]:offsets[i + 1]]``.

    Returns
    -------
    ndarray of float64, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> polygon_areas(np.array([[0., 0.], [3., 0.], [3., 2.], [0., 2.]]), np.array([0, 4])).tolist()
    [6.0]
    """
    xy = np.asarray(xy, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if len(xy) == 0:
        return np.zeros(n)
    counts = np.diff(offsets)
    first = np.repeat(offsets[:-1], counts)
    rel = xy - xy[first]
    nxt = _next_index(offsets)
    cross = rel[:, 0] * rel[nxt, 1] - rel[nxt, 0] * rel[:, 1]
    return 0.5 * _segment_sums(cross, offsets)


def polygon_centroids(xy: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Area centroid of every polygon, shape ``(n, 2)``.

    A polygon of zero area gets the mean of its vertices (NaN when it has none).

    Examples
    --------
    >>> import numpy as np
    >>> polygon_centroids(np.array([[0., 0.], [4., 0.], [4., 2.], [0., 2.]]), np.array([0, 4])).tolist()
    [[2.0, 1.0]]
    """
    xy = np.asarray(xy, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    out = np.full((n, 2), np.nan)
    if len(xy) == 0:
        return out
    counts = np.diff(offsets)
    first = np.repeat(offsets[:-1], counts)
    rel = xy - xy[first]
    nxt = _next_index(offsets)
    cross = rel[:, 0] * rel[nxt, 1] - rel[nxt, 0] * rel[:, 1]
    a6 = 3.0 * _segment_sums(cross, offsets)  # 6 * area
    cx = _segment_sums((rel[:, 0] + rel[nxt, 0]) * cross, offsets)
    cy = _segment_sums((rel[:, 1] + rel[nxt, 1]) * cross, offsets)
    base = np.zeros((n, 2))
    nonempty = counts > 0
    base[nonempty] = xy[offsets[:-1][nonempty]]
    ok = a6 != 0
    out[ok, 0] = base[ok, 0] + cx[ok] / a6[ok]
    out[ok, 1] = base[ok, 1] + cy[ok] / a6[ok]
    flat = ~ok & nonempty
    if flat.any():
        mean = np.stack([_segment_sums(xy[:, 0], offsets), _segment_sums(xy[:, 1], offsets)], 1)
        out[flat] = mean[flat] / counts[flat, None]
    return out


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain), counter-clockwise, collinear points dropped.

    Examples
    --------
    >>> import numpy as np
    >>> convex_hull(np.array([[0., 0.], [1., 1.], [2., 0.], [2., 2.], [0., 2.]])).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    """
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return pts
    pl = [tuple(p) for p in pts]  # sorted by x then y (np.unique)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pl:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pl):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def points_in_convex(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Boolean mask of points inside (or on) a counter-clockwise convex polygon.

    Examples
    --------
    >>> import numpy as np
    >>> sq = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.]])
    >>> points_in_convex(np.array([[0.5, 0.5], [2.0, 0.5]]), sq).tolist()
    [True, False]
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(poly, dtype=np.float64)
    inside = np.ones(len(pts), dtype=bool)
    nxt = np.roll(poly, -1, axis=0)
    for a, b in zip(poly, nxt):
        inside &= (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]) >= 0
    return inside


def polygon_problem(ring: np.ndarray) -> str | None:
    """Why a ring is not a valid simple polygon, or ``None`` when it is.

    The ring must not be closed (first vertex not repeated), have at least 3 distinct vertices,
    finite coordinates, non-zero area, and no two edges may cross or touch except consecutive
    edges at their shared vertex.

    Examples
    --------
    >>> import numpy as np
    >>> polygon_problem(np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.]])) is None
    True
    >>> polygon_problem(np.array([[0., 0.], [2., 2.], [2., 0.], [0., 1.]]))
    'self-intersecting ring (edges 1 and 3 cross)'
    """
    r = np.asarray(ring, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != 2:
        return "a ring of [x, y] pairs"
    if not np.isfinite(r).all():
        return "non-finite coordinates"
    m = len(r)
    if m < 3 or len(np.unique(r, axis=0)) < 3:
        return f"fewer than 3 distinct vertices ({len(np.unique(r, axis=0)) if m else 0})"
    if (r == np.roll(r, -1, axis=0)).all(axis=1).any():
        return "repeated consecutive vertices"
    area = polygon_areas(r, np.array([0, m]))[0]
    if area == 0 or not np.isfinite(area):
        return "zero area"
    a = r
    b = np.roll(r, -1, axis=0)
    cx, cy, dx, dy = a[:, 0][None, :], a[:, 1][None, :], b[:, 0][None, :], b[:, 1][None, :]
    j = np.arange(m)[None, :]
    step = max(1, 2_000_000 // m)  # rows of edge pairs per batch, to bound memory
    for s0 in range(0, m, step):
        rows = slice(s0, min(m, s0 + step))
        i = np.arange(s0, min(m, s0 + step))[:, None]
        ax, ay, bx, by = a[rows, 0][:, None], a[rows, 1][:, None], b[rows, 0][:, None], b[rows, 1][:, None]
        o1 = np.sign((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
        o2 = np.sign((bx - ax) * (dy - ay) - (by - ay) * (dx - ax))
        o3 = np.sign((dx - cx) * (ay - cy) - (dy - cy) * (ax - cx))
        o4 = np.sign((dx - cx) * (by - cy) - (dy - cy) * (bx - cx))
        boxes = (
            (np.minimum(ax, bx) <= np.maximum(cx, dx))
            & (np.minimum(cx, dx) <= np.maximum(ax, bx))
            & (np.minimum(ay, by) <= np.maximum(cy, dy))
            & (np.minimum(cy, dy) <= np.maximum(ay, by))
        )
        hit = (o1 * o2 <= 0) & (o3 * o4 <= 0) & boxes
        adjacent = (j == i + 1) | ((i == 0) & (j == m - 1))
        # consecutive edges share a vertex; they are only a problem when they fold back
        # (collinear and pointing in opposite directions; a straight-through vertex is fine)
        back = (bx - ax) * (dx - cx) + (by - ay) * (dy - cy) < 0
        fold = adjacent & (o1 == 0) & (o2 == 0) & (o3 == 0) & (o4 == 0) & back
        bad = ((hit & ~adjacent) | fold) & (j > i)
        if bad.any():
            bi, bj = np.unravel_index(int(np.argmax(bad)), bad.shape)
            return f"self-intersecting ring (edges {s0 + int(bi) + 1} and {int(bj) + 1} cross)"
    return None


def convex_simple_mask(xy: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """True for each polygon that is strictly convex and counter-clockwise (hence simple).

    A cheap vectorised test used before the exact :func:`polygon_problem` check: every turn
    is a strict left turn and the turns add up to one full revolution.

    Examples
    --------
    >>> import numpy as np
    >>> xy = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.], [0., 0.], [0., 1.], [1., 1.], [1., 0.]])
    >>> convex_simple_mask(xy, np.array([0, 4, 8])).tolist()
    [True, False]
    """
    xy = np.asarray(xy, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    if len(xy) == 0:
        return np.zeros(n, dtype=bool)
    nxt = _next_index(offsets)
    prv = np.empty_like(nxt)
    prv[nxt] = np.arange(len(nxt))
    e1 = xy - xy[prv]
    e2 = xy[nxt] - xy
    cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    dot = e1[:, 0] * e2[:, 0] + e1[:, 1] * e2[:, 1]
    turn = _segment_sums(np.arctan2(cross, dot), offsets)
    left = _segment_sums((cross > 0).astype(np.float64), offsets)
    deg = np.diff(offsets)
    return (deg >= 3) & (left == deg) & (np.abs(turn - 2 * np.pi) < 1e-6)


# --------------------------------------------------------------------------- Voronoi tiling


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


# --------------------------------------------------------------------------- adjacency


def adjacency_from_edges(edge_nbr: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR adjacency (``indptr``, ``indices``) from per-edge neighbour labels.

    Two polygons are adjacent when either one has an edge labelled with the other.
    Neighbour lists are sorted.

    Examples
    --------
    >>> import numpy as np
    >>> indptr, indices = adjacency_from_edges(np.array([-1, 1, -1, -1, -1, -1]), np.array([0, 3, 6]))
    >>> indptr.tolist(), indices.tolist()
    ([0, 1, 2], [1, 0])
    """
    edge_nbr = np.asarray(edge_nbr, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    has = edge_nbr >= 0
    a = np.concatenate([owner[has], edge_nbr[has]])
    b = np.concatenate([edge_nbr[has], owner[has]])
    return csr_from_pairs(a, b, n)


def csr_from_pairs(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (``indptr``, ``indices``) of the distinct pairs ``a[k] -> b[k]`` (self pairs dropped).

    Examples
    --------
    >>> import numpy as np
    >>> [x.tolist() for x in csr_from_pairs(np.array([1, 0, 1]), np.array([0, 1, 0]), 3)]
    [[0, 1, 2, 2], [1, 0]]
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    keep = a != b
    key = np.unique(a[keep] * max(n, 1) + b[keep])
    src = key // max(n, 1)
    dst = key % max(n, 1)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
    return indptr, dst.astype(np.int64)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``counts[k]`` items per group: (group, index within group) of every item."""
    counts = np.asarray(counts, dtype=np.int64)
    group = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, local


def _near_edge_pairs(a: np.ndarray, b: np.ndarray, owner: np.ndarray, pad: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of edges ``a[k] -> b[k]`` of different owners that come within ``pad`` of each other
    (possibly: every truly close pair is listed, some farther ones too).

    Edges are hashed on a uniform grid: short edges by their padded bounding box, long ones by
    the 3 x 3 cell neighbourhood of points sampled every half cell along them, so the work
    grows with the total edge length, not with the product of polygon sizes.
    """
    e = len(a)
    lo = np.minimum(a, b) - pad
    hi = np.maximum(a, b) + pad
    g0 = lo.min(0)
    extent = np.maximum(hi.max(0) - g0, 1e-12)
    size = (hi - lo).max(1)
    h = max(float(np.percentile(size, 90)), math.sqrt(extent[0] * extent[1] / (4.0 * e)), 8.0 * pad, 1e-9)
    h = max(h, float(extent.max()) / 4096.0)
    nx = int(extent[0] // h) + 4  # a margin column each side for the sample neighbourhoods
    ix0 = np.floor((lo - g0) / h).astype(np.int64)
    ix1 = np.floor((hi - g0) / h).astype(np.int64)
    span = (ix1 - ix0 + 1).prod(1)
    short = span <= 16
    # short edges: every cell of the padded box
    se = np.flatnonzero(short)
    wx = ix1[se, 0] - ix0[se, 0] + 1
    k, local = _expand(span[se])
    cells_s = (ix0[se, 1][k] + local // wx[k] + 1) * nx + ix0[se, 0][k] + local % wx[k] + 1
    edges_s = se[k]
    # long edges: 3 x 3 neighbourhoods of samples every h / 2
    le = np.flatnonzero(~short)
    length = np.hypot(*(b[le] - a[le]).T)
    ns = np.ceil(length / (0.5 * h)).astype(np.int64) + 1
    k, local = _expand(ns)
    t = local / (ns[k] - 1)
    pts = a[le][k] + t[:, None] * (b[le] - a[le])[k]
    c = np.floor((pts - g0) / h).astype(np.int64)
    off = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    cl = (c[:, None, :] + off[None, :, :]).reshape(-1, 2)
    cells_l = (cl[:, 1] + 1) * nx + cl[:, 0] + 1
    edges_l = np.repeat(le[k], 9)
    cells = np.concatenate([cells_s, cells_l])
    edges = np.concatenate([edges_s, edges_l])
    key = np.unique(cells * e + edges)  # sorted by cell, then edge; duplicates gone
    cells, edges = key // e, key % e
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    counts = np.diff(np.r_[starts, len(cells)])
    busy = counts > 1
    starts, counts = starts[busy], counts[busy]
    g, loc = _expand(counts * counts)
    i = edges[starts[g] + loc // counts[g]]
    j = edges[starts[g] + loc % counts[g]]
    keep = (i < j) & (owner[i] != owner[j])
    pair = np.unique(i[keep] * e + j[keep])
    return pair // e, pair % e


def match_shared_edges(xy: np.ndarray, offsets: np.ndarray, *, tol: float = EDGE_TOL_M) -> np.ndarray:
    """Label every edge with the polygon on its other side, found geometrically (-1: none).

    Two edges of different polygons are shared when both endpoints of one lie within ``tol``
    of the other's line and they overlap by more than ``tol / 2`` along it (so subdivided or
    T-junction borders match too); when parts of one edge border several polygons the longest
    overlap wins. Work grows with the number of edges, not with the polygon sizes squared.

    Examples
    --------
    >>> import numpy as np
    >>> xy = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.], [1., 0.], [2., 0.], [2., 1.], [1., 1.]])
    >>> match_shared_edges(xy, np.array([0, 4, 8])).tolist()
    [-1, 1, -1, -1, -1, -1, -1, 0]
    """
    xy = np.asarray(xy, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    total = len(xy)
    out = np.full(total, -1, dtype=np.int64)
    if total == 0:
        return out
    deg = np.diff(offsets)
    owner = np.repeat(np.arange(len(deg), dtype=np.int64), deg)
    nxt = _next_index(offsets)
    ei, ej = _near_edge_pairs(xy, xy[nxt], owner, tol)
    if len(ei) == 0:
        return out
    a, b = xy[ei], xy[nxt[ei]]
    c, d = xy[ej], xy[nxt[ej]]
    u = b - a
    length = np.hypot(u[:, 0], u[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        u = u / length[:, None]
    dist_c = np.abs(u[:, 0] * (c[:, 1] - a[:, 1]) - u[:, 1] * (c[:, 0] - a[:, 0]))
    dist_d = np.abs(u[:, 0] * (d[:, 1] - a[:, 1]) - u[:, 1] * (d[:, 0] - a[:, 0]))
    t1 = u[:, 0] * (c[:, 0] - a[:, 0]) + u[:, 1] * (c[:, 1] - a[:, 1])
    t2 = u[:, 0] * (d[:, 0] - a[:, 0]) + u[:, 1] * (d[:, 1] - a[:, 1])
    overlap = np.minimum(length, np.maximum(t1, t2)) - np.maximum(0.0, np.minimum(t1, t2))
    # collinear: the shorter edge's endpoints lie on the longer edge's line
    other_len = np.hypot(*(d - c).T)
    ok_ij = (length > 0) & (dist_c <= tol) & (dist_d <= tol)
    # when j is the longer edge, test i's endpoints against j's line instead
    v = d - c
    with np.errstate(invalid="ignore", divide="ignore"):
        v = v / other_len[:, None]
    dist_a = np.abs(v[:, 0] * (a[:, 1] - c[:, 1]) - v[:, 1] * (a[:, 0] - c[:, 0]))
    dist_b = np.abs(v[:, 0] * (b[:, 1] - c[:, 1]) - v[:, 1] * (b[:, 0] - c[:, 0]))
    ok_ji = (other_len > 0) & (dist_a <= tol) & (dist_b <= tol)
    collinear = np.where(length >= other_len, ok_ij, ok_ji)
    ok = collinear & (overlap > 0.5 * tol)
    if not ok.any():
        return out
    ei, ej, ov = ei[ok], ej[ok], overlap[ok]
    edges = np.concatenate([ei, ej])
    other = np.concatenate([owner[ej], owner[ei]])
    ovl = np.concatenate([ov, ov])
    order = np.lexsort((other, -ovl, edges))  # per edge: longest overlap first, then lowest id
    edges, other = edges[order], other[order]
    first = np.ones(len(edges), dtype=bool)
    first[1:] = edges[1:] != edges[:-1]
    out[edges[first]] = other[first]
    return out


# --------------------------------------------------------------------------- clustering


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> np.ndarray:
    """Lloyd's k-means with k-means++ start; returns ``k`` centres (empty clusters reseeded).

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0., 0.], [0., 1.], [10., 0.], [10., 1.]])
    >>> c = kmeans(pts, 2, np.random.default_rng(0))
    >>> sorted(c[:, 0].tolist())
    [0.0, 10.0]
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points ({n}), got {k}")
    centres = np.empty((k, 2))
    centres[0] = pts[rng.integers(n)]
    d2 = ((pts - centres[0]) ** 2).sum(1)
    for c in range(1, k):
        tot = d2.sum()
        pick = int(rng.choice(n, p=d2 / tot)) if tot > 0 else int(rng.integers(n))
        centres[c] = pts[pick]
        d2 = np.minimum(d2, ((pts - centres[c]) ** 2).sum(1))
    for _ in range(iters):
        dist = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        lab = np.argmin(dist, axis=1)
        cnt = np.bincount(lab, minlength=k)
        new = np.empty_like(centres)
        new[:, 0] = np.bincount(lab, weights=pts[:, 0], minlength=k)
        new[:, 1] = np.bincount(lab, weights=pts[:, 1], minlength=k)
        empty = cnt == 0
        new[~empty] /= cnt[~empty, None]
        if empty.any():  # reseed on the points worst served
            far = np.argsort(-dist[np.arange(n), lab], kind="stable")[: int(empty.sum())]
            new[empty] = pts[far]
        if np.array_equal(new, centres):
            break
        centres = new
    return centres


def grow_regions(
    points: np.ndarray, indptr: np.ndarray, indices: np.ndarray, centres: np.ndarray
) -> np.ndarray:
    """Partition a graph into contiguous groups grown from the nodes nearest ``centres``.

    A best-first flood: each group starts at the node nearest its centre and repeatedly takes
    the unassigned neighbour closest to its own centre. Every group is connected and non-empty
    when the graph is connected. Nodes unreachable from any start join the nearest centre.

    Returns
    -------
    ndarray of int64, shape (n,)
        Group of every node.

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0., 0.], [1., 0.], [2., 0.], [3., 0.]])
    >>> indptr, indices = np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2])
    >>> grow_regions(pts, indptr, indices, np.array([[0., 0.], [3., 0.]])).tolist()
    [0, 0, 1, 1]
    """
    pts = np.asarray(points, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    n, k = len(pts), len(centres)
    group = np.full(n, -1, dtype=np.int64)
    heap: list = []
    taken: set = set()
    for c in range(k):
        d2 = ((pts - centres[c]) ** 2).sum(1)
        for s in np.lexsort((np.arange(n), d2)).tolist():
            if s not in taken:
                taken.add(s)
                heapq.heappush(heap, (0.0, c, s))
                break
    ip = indptr.tolist()
    ind = indices.tolist()
    px = pts[:, 0].tolist()
    py = pts[:, 1].tolist()
    cx = centres[:, 0].tolist()
    cy = centres[:, 1].tolist()
    while heap:
        _, c, s = heapq.heappop(heap)
        if group[s] >= 0:
            continue
        group[s] = c
        for t in ind[ip[s] : ip[s + 1]]:
            if group[t] < 0:
                heapq.heappush(heap, ((px[t] - cx[c]) ** 2 + (py[t] - cy[c]) ** 2, c, t))
    lost = group < 0
    if lost.any():
        d = ((pts[lost, None, :] - centres[None, :, :]) ** 2).sum(-1)
        group[lost] = np.argmin(d, axis=1)
    return group


# --------------------------------------------------------------------------- sampling


def sample_in_polygons(
    rng: np.random.Generator, xy: np.ndarray, offsets: np.ndarray, which: np.ndarray, shrink: float = 0.97
) -> np.ndarray:
    """One uniform random point inside each polygon ``which[k]`` (convex polygons).

    The polygon is fanned into triangles from its first vertex; a triangle is chosen by area
    and a point drawn in it, then pulled toward the polygon centroid by ``shrink`` so that it
    keeps clear of the edges.

    Examples
    --------
    >>> import numpy as np
    >>> sq = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.]])
    >>> p = sample_in_polygons(np.random.default_rng(1), sq, np.array([0, 4]), np.zeros(100, int))
    >>> bool(((p > 0) & (p < 1)).all())
    True
    """
    which = np.asarray(which, dtype=np.int64)
    xy = np.asarray(xy, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(which) == 0:
        return np.zeros((0, 2))
    deg = np.diff(offsets)
    ntri = np.maximum(deg - 2, 0)
    tri_start = np.concatenate([[0], np.cumsum(ntri)]).astype(np.int64)
    owner = np.repeat(np.arange(len(deg)), ntri)
    local = np.arange(int(ntri.sum())) - tri_start[owner]
    a = xy[offsets[owner]]
    b = xy[offsets[owner] + local + 1]
    c = xy[offsets[owner] + local + 2]
    tri_area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    cum = np.cumsum(tri_area)
    before = np.concatenate([[0.0], cum])[tri_start[:-1]]
    poly_area = np.concatenate([[0.0], cum])[tri_start[1:]] - before
    u = rng.random(len(which))
    target = before[which] + u * poly_area[which]
    t = np.searchsorted(cum, target, side="right")
    t = np.clip(t, tri_start[which], tri_start[which + 1] - 1)
    r1 = rng.random(len(which))
    r2 = rng.random(len(which))
    flip = r1 + r2 > 1.0
    r1[flip], r2[flip] = 1.0 - r1[flip], 1.0 - r2[flip]
    p = a[t] + r1[:, None] * (b[t] - a[t]) + r2[:, None] * (c[t] - a[t])
    cen = polygon_centroids(xy, offsets)[which]
    return cen + shrink * (p - cen)


# --------------------------------------------------------------------------- point location


@dataclass(frozen=True)
class BucketIndex:
    """A uniform bucket grid over the polygons' bounding box: bucket -> polygons touching it.

    ``indptr``/``polys`` is a CSR list per bucket (row-major, ``ny`` rows of ``nx``); polygon
    ids in each bucket are sorted, so the first hit of a scan is the lowest id.
    """

    x0: float
    y0: float
    bw: float
    bh: float
    nx: int
    ny: int
    indptr: np.ndarray
    polys: np.ndarray
    poly_lo: np.ndarray
    poly_hi: np.ndarray

    @classmethod
    def build(cls, xy: np.ndarray, offsets: np.ndarray, pad: float = 0.0, per_bucket: float = 1.0) -> "BucketIndex":
        """Index ``n`` polygons on about ``n / per_bucket`` buckets.

        Examples
        --------
        >>> import numpy as np
        >>> idx = BucketIndex.build(np.array([[0., 0.], [1., 0.], [0., 1.]]), np.array([0, 3]))
        >>> idx.polys.tolist()
        [0]
        """
        xy = np.asarray(xy, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.int64)
        n = len(offsets) - 1
        deg = np.diff(offsets)
        lo = np.full((n, 2), np.inf)
        hi = np.full((n, 2), -np.inf)
        ne = deg > 0
        if ne.any():
            starts = offsets[:-1][ne]
            lo[ne] = np.minimum.reduceat(xy, starts, axis=0)
            hi[ne] = np.maximum.reduceat(xy, starts, axis=0)
        if not ne.any():
            return cls(0.0, 0.0, 1.0, 1.0, 1, 1, np.zeros(2, np.int64), np.zeros(0, np.int64), lo, hi)
        gx0, gy0 = lo[ne, 0].min() - pad, lo[ne, 1].min() - pad
        gx1, gy1 = hi[ne, 0].max() + pad, hi[ne, 1].max() + pad
        w = max(gx1 - gx0, 1e-9)
        h = max(gy1 - gy0, 1e-9)
        # a hair of margin so that the outermost vertices fall strictly inside the grid
        gx0 -= 1e-9 * w
        gy0 -= 1e-9 * h
        w *= 1 + 2e-9
        h *= 1 + 2e-9
        nb = max(1.0, ne.sum() / per_bucket)
        nx = max(1, int(math.ceil(math.sqrt(nb * w / h))))
        ny = max(1, int(math.ceil(nb / nx)))
        nx, ny = min(nx, 4096), min(ny, 4096)
        bw, bh = w / nx, h / ny
        ix0 = np.clip(np.floor((lo[ne, 0] - pad - gx0) / bw), 0, nx - 1).astype(np.int64)
        ix1 = np.clip(np.floor((hi[ne, 0] + pad - gx0) / bw), 0, nx - 1).astype(np.int64)
        iy0 = np.clip(np.floor((lo[ne, 1] - pad - gy0) / bh), 0, ny - 1).astype(np.int64)
        iy1 = np.clip(np.floor((hi[ne, 1] + pad - gy0) / bh), 0, ny - 1).astype(np.int64)
        pid = np.flatnonzero(ne)
        wx = ix1 - ix0 + 1
        cnt = wx * (iy1 - iy0 + 1)
        rep = np.repeat(np.arange(len(pid)), cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
        bx = ix0[rep] + local % wx[rep]
        by = iy0[rep] + local // wx[rep]
        bucket = by * nx + bx
        poly = pid[rep]
        order = np.lexsort((poly, bucket))
        bucket, poly = bucket[order], poly[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=nx * ny))]).astype(np.int64)
        return cls(float(gx0), float(gy0), float(bw), float(bh), nx, ny, indptr, poly.astype(np.int64), lo, hi)


@njit
def _locate_kernel(px, py, poly_xy, poly_offsets, x0, y0, bw, bh, nx, ny, b_indptr, b_polys, out):
    for k in range(px.shape[0]):
        x = px[k]
        y = py[k]
        out[k] = -1
        fx = (x - x0) / bw
        fy = (y - y0) / bh
        if not (fx >= 0.0 and fx < nx and fy >= 0.0 and fy < ny):
            continue
        b = int(fy) * nx + int(fx)
        for t in range(b_indptr[b], b_indptr[b + 1]):
            p = b_polys[t]
            s = poly_offsets[p]
            e = poly_offsets[p + 1]
            inside = False
            j = e - 1
            for i in range(s, e):
                xi = poly_xy[i, 0]
                yi = poly_xy[i, 1]
                xj = poly_xy[j, 0]
                yj = poly_xy[j, 1]
                if (yi > y) != (yj > y):
                    if x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                        inside = not inside
                j = i
            if inside:
                out[k] = p
                break


def locate_points(x, y, xy: np.ndarray, offsets: np.ndarray, index: BucketIndex | None = None) -> np.ndarray:
    """Polygon containing each point (lowest id if several), -1 when none; ray casting.

    Parameters
    ----------
    x, y : array_like
        Point coordinates, same shape (NaN gives -1).
    xy, offsets : ndarray
        Flat polygons (any orientation, may be non-convex).
    index : BucketIndex, optional
        Prebuilt bucket grid (``BucketIndex.build(xy, offsets)``); built when omitted.

    Returns
    -------
    ndarray of int64, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> sq = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.]])
    >>> locate_points([0.5, 2.0], [0.5, 0.5], sq, np.array([0, 4])).tolist()
    [0, -1]
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same shape, got {xa.shape} and {ya.shape}")
    if index is None:
        index = BucketIndex.build(xy, offsets)
    fx = np.ascontiguousarray(xa.ravel())
    fy = np.ascontiguousarray(ya.ravel())
    out = np.empty(fx.shape[0], dtype=np.int64)
    _locate_kernel(
        fx, fy, np.ascontiguousarray(xy, dtype=np.float64), np.ascontiguousarray(offsets, dtype=np.int64),
        index.x0, index.y0, index.bw, index.bh, index.nx, index.ny, index.indptr, index.polys, out,
    )
    return out.reshape(xa.shape)

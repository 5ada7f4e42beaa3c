"""Polygon measures and checks: areas, centroids, convex hull, validity, uniform sampling."""

from __future__ import annotations

import numpy as np

from engine.geometry.edges import _near_edge_pairs, _next_index


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
    if m <= 256:
        i, j = np.triu_indices(m, k=1)
    else:  # only edges that come near each other can cross: hash them on a grid
        pad = 1e-9 * float(np.abs(r).max() + 1.0)
        i, j = _near_edge_pairs(a, b, np.arange(m), pad)
    ax, ay, bx, by = a[i, 0], a[i, 1], b[i, 0], b[i, 1]
    cx, cy, dx, dy = a[j, 0], a[j, 1], b[j, 0], b[j, 1]
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
    bad = (hit & ~adjacent) | fold
    if bad.any():
        k = int(np.argmax(bad))
        return f"self-intersecting ring (edges {int(i[k]) + 1} and {int(j[k]) + 1} cross)"
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

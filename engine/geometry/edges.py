"""Polygon edges: the next-vertex index, near-edge pairs on a hash grid, shared-edge matching."""

from __future__ import annotations

import math

import numpy as np


#: Edges shorter than this (metres) are merged away when cells are built, so no polygon carries
#: a numerically degenerate edge; shared edges are matched geometrically at half this length.
EDGE_TOL_M = 1e-3


def _next_index(offsets: np.ndarray) -> np.ndarray:
    """Index of the following vertex within the same ring, for every vertex."""
    total = int(offsets[-1])
    nxt = np.arange(1, total + 1, dtype=np.int64)
    counts = np.diff(offsets)
    last = offsets[1:][counts > 0] - 1
    nxt[last] = offsets[:-1][counts > 0]
    return nxt


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

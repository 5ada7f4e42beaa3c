"""Graphs over polygons: CSR adjacency, k-means centres and contiguous region growing."""

from __future__ import annotations

import heapq

import numpy as np


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

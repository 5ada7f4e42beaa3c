"""Point location: a bucket grid over the polygons (:class:`BucketIndex`) and a numba ray-casting kernel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.config import njit


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

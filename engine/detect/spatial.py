"""Detector 5: spatial outlier -- a neighbourhood's residual against its neighbours'.

At one cycle, with ``z`` the standardised residuals of one indicator in every region
(clipped at :data:`Z_CLIP`), the contrast of region ``r`` with its ``m`` neighbours that
have data is ``d = (z_r - mean(z_nb)) / sqrt(1 + 1/m)`` (unit variance when residuals are
independent), scored with the same t(4) tail as the seasonal detector. A shock common to
the whole area (rain, a holiday) raises every ``z`` and leaves ``d`` small; a region that
departs from its neighbours stands out. Needs ``spatial_min_neighbours`` neighbours.

>>> import numpy as np
>>> z = np.array([0.0, 0.2, -0.1, 8.0])
>>> indptr = np.array([0, 3, 5, 7, 10]); indices = np.array([1, 2, 3, 0, 3, 0, 3, 0, 1, 2])
>>> s = np.zeros(4); d = np.zeros(4, dtype=np.int8)
>>> spatial_pass(z, indptr, indices, 1, 2, s, d, 5)
>>> d.tolist(), round(float(s[3]), 3)
([0, 0, 0, 5], 0.997)
"""

from __future__ import annotations

import math

import numpy as np

from engine.config import njit
from engine.detect.special import t4_sf

__all__ = ["Z_CLIP", "spatial_contrast", "spatial_pass"]

#: standardised residuals are clipped at this before the contrast
Z_CLIP = 6.0


@njit
def _clip(z):
    return Z_CLIP if z > Z_CLIP else (-Z_CLIP if z < -Z_CLIP else z)


@njit
def spatial_contrast(z, indptr, indices, r, min_nb):
    """Contrast ``d`` of region ``r`` (NaN if ``z[r]`` is NaN or too few neighbours have data)."""
    zr = z[r]
    if math.isnan(zr):
        return math.nan
    acc = 0.0
    m = 0
    for j in range(indptr[r], indptr[r + 1]):
        zj = z[indices[j]]
        if not math.isnan(zj):
            acc += _clip(zj)
            m += 1
    if m < min_nb:
        return math.nan
    return (_clip(zr) - acc / m) / math.sqrt(1.0 + 1.0 / m)


@njit(error_model="numpy")
def spatial_pass(z, indptr, indices, direction, min_nb, score, det, code, zc=None, w=None, acc=None, cnt=None):
    """Raise ``score[r]`` to the spatial score where it is higher (``det[r] = code`` there).

    The arithmetic of :func:`spatial_contrast` and :func:`engine.detect.seasonal.t_score`
    (the closed-form t(4) tail of :func:`engine.detect.special.t4_sf`), in four loops over the
    regions: the residuals clipped once into ``zc`` (0 where missing) beside a 0 / 1 weight
    ``w``; then, for a row with at least a third of its regions scored, the neighbour sums
    ``acc`` and counts ``cnt`` as branch-free gathers; every region's
    contrast score (``error_model="numpy"`` and no stores but one: the loop vectorises, 4
    float64 lanes of square roots and divisions; no division here can be by zero); then the
    update (a sparser row goes region by region, skipping the missing ones). One region at a
    time with a NaN test per neighbour and a scalar tail cost ~1.6x as much on a full row (docs/detect.md, "Detector speed in a run, 2026-11-29 (third session)"). The same
    operations in the same order, so the same scores bit for bit: a missing neighbour adds
    +0.0 (which changes no sum that starts at +0.0), and the tail of each direction is the one
    of ``|d|`` (``tests/test_detect_spatial.py`` checks against the plain reference).
    ``zc``, ``w``: scratch of ``z``'s length and dtype; ``acc``, ``cnt``: float64 scratch of
    that length (each allocated when None).
    """
    n = z.shape[0]
    if zc is None:
        zc = np.empty_like(z)
    if w is None:
        w = np.empty_like(z)
    if acc is None:
        acc = np.empty(n, dtype=np.float64)
    if cnt is None:
        cnt = np.empty(n, dtype=np.float64)
    nv = 0.0
    for r in range(n):
        zr = z[r]
        ok = zr == zr
        c = Z_CLIP if zr > Z_CLIP else (-Z_CLIP if zr < -Z_CLIP else zr)
        zc[r] = c if ok else 0.0
        w[r] = 1.0 if ok else 0.0
        nv += 1.0 if ok else 0.0
    if nv == 0.0:                          # a row not scored this cycle (cold, unjudged, no data)
        return
    if 3.0 * nv < n:
        # a sparse row (a third of the demo's rows have < 1/3 of their regions scored): region
        # by region, skipping the missing ones, is cheaper than every region's vector pass
        for r in range(n):
            if w[r] == 0.0:
                continue
            a = 0.0
            m = 0
            for j in range(indptr[r], indptr[r + 1]):
                k = indices[j]
                if w[k] != 0.0:
                    a += zc[k]
                    m += 1
            if m < min_nb or m == 0:
                continue
            d = (np.float64(zc[r]) - a / m) / math.sqrt(1.0 + 1.0 / m)
            old = score[r]
            if direction == 1:
                sc = 1.0 - t4_sf(d) if d > 0.0 else 0.0
            elif direction == -1:
                sc = 1.0 - t4_sf(-d) if d < 0.0 else 0.0
            else:
                sc = 1.0 - 2.0 * t4_sf(abs(d))
            if old != old or sc > old:
                score[r] = sc
                det[r] = code
        return
    for r in range(n):
        a = 0.0
        mf = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            k = indices[j]
            a += zc[k]
            mf += w[k]
        acc[r] = a
        cnt[r] = mf
    for r in range(n):                     # the contrast's score, vectorised (float64, 4 lanes)
        mf = cnt[r]
        m = mf if mf >= 1.0 else 1.0
        d = (np.float64(zc[r]) - acc[r] / m) / math.sqrt(1.0 + 1.0 / m)
        # t4_sf(|d|), as :func:`engine.detect.special.t4_sf` computes it for t >= 0
        a = abs(d)
        q = math.sqrt(4.0 + a * a)
        omw = 4.0 / (q * (q + a))
        tail = 0.5 * omw * omw * (1.0 + 0.5 * a / q)
        if direction == 1:
            sc = 1.0 - tail if d > 0.0 else 0.0
        elif direction == -1:
            sc = 1.0 - tail if d < 0.0 else 0.0
        else:
            sc = 1.0 - 2.0 * tail
        acc[r] = sc
    lo = np.float64(min_nb if min_nb > 1 else 1)
    for r in range(n):
        old = score[r]
        sc = acc[r]
        if w[r] > 0.0 and cnt[r] >= lo and (old != old or sc > old):
            score[r] = sc
            det[r] = code

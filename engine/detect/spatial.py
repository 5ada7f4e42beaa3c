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


@njit
def spatial_pass(z, indptr, indices, direction, min_nb, score, det, code):
    """Raise ``score[r]`` to the spatial score where it is higher (``det[r] = code`` there).

    The arithmetic of :func:`spatial_contrast` and :func:`engine.detect.seasonal.t_score`,
    written out in one loop: a call per region (three array arguments) cost ~4x the work itself
    at 300 neighbourhoods.
    """
    for r in range(z.shape[0]):
        zr = z[r]
        if zr != zr:
            continue
        acc = 0.0
        m = 0
        for j in range(indptr[r], indptr[r + 1]):
            zj = z[indices[j]]
            if zj == zj:
                acc += Z_CLIP if zj > Z_CLIP else (-Z_CLIP if zj < -Z_CLIP else zj)
                m += 1
        if m < min_nb or m == 0:
            continue
        zc = Z_CLIP if zr > Z_CLIP else (-Z_CLIP if zr < -Z_CLIP else zr)
        d = (zc - acc / m) / math.sqrt(1.0 + 1.0 / m)
        old = score[r]
        if direction == 1:
            s = 1.0 - t4_sf(d) if d > 0.0 else 0.0
        elif direction == -1:
            s = 1.0 - t4_sf(-d) if d < 0.0 else 0.0
        else:
            s = 1.0 - 2.0 * t4_sf(abs(d))
        if old != old or s > old:
            score[r] = s
            det[r] = code

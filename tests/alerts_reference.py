"""Slow, obvious references for the alert manager's numba kernels."""

from __future__ import annotations

import numpy as np


def common_mode_reference(score, det, value, min_regions, looks, threshold_code):
    """:func:`engine.alerts.common.common_mode`, one row at a time in plain numpy."""
    n_ind, n_reg = score.shape
    local = np.full((n_ind, n_reg), np.nan)
    district = np.full(n_ind, np.nan)
    d_det = np.zeros(n_ind, np.int8)
    d_val = np.full(n_ind, np.nan)
    for i in range(n_ind):
        s = score[i].astype(float)
        ok = ~np.isnan(s)
        p = 1.0 - s
        stat = det[i] != threshold_code
        p[stat] = np.minimum(1.0, looks * p[stat])
        if ok.sum() < min_regions:
            local[i] = 1.0 - p
            continue
        if (p[ok] < 0.5).sum() * 2 <= ok.sum():       # nothing shared
            local[i] = 1.0 - p
            district[i] = 0.5
            continue
        med = np.median(p[ok])
        district[i] = 1.0 - med
        near = np.flatnonzero(ok)[np.argmin(np.abs(p[ok] - med))]   # first of the nearest
        d_det[i], d_val[i] = det[i, near], value[i, near]
        f = min(1.0, max(2.0 * med, 1e-12))
        local[i] = np.where(p / f >= 1.0, 0.0, 1.0 - p / f)
    return local, district, d_det, d_val

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


def family_adjust_reference(local, det, district, district_det, rows, method, alpha, warn, threshold_code,
                            scan_tests=0, scan_share=0.1, cluster_code=6):
    """:func:`engine.alerts.multiplicity.family_adjust` in plain numpy, with the exact BH over every tail.

    With ``scan_tests``: the cluster cells get ``q = p scan_tests / scan_share``, the other tests
    the procedure at ``alpha (1 - scan_share)``. Returns new (local, district) float64 score
    arrays and ``m``.
    """
    s = np.concatenate([local, district], axis=1).astype(np.float64)
    d = np.concatenate([det, district_det], axis=1)
    scan = np.zeros(s.shape, bool)
    if scan_tests:
        scan = rows[:, None] & ~np.isnan(s) & (d == cluster_code)
        q = (1.0 - s[scan]) * scan_tests / scan_share
        s[scan] = 1.0 - np.minimum(1.0, q * (1.0 - warn) / alpha)
        alpha = alpha * (1.0 - scan_share)
    test = rows[:, None] & ~np.isnan(s) & (d != threshold_code) & ~scan
    p = 1.0 - s[test]
    m = p.size
    if method == "none" or m == 0:
        q = p
    elif method == "bonferroni":
        q = m * p
    else:
        order = np.argsort(p, kind="mergesort")
        step = p[order] * m / np.arange(1, m + 1)
        q = np.empty(m)
        q[order] = np.minimum.accumulate(step[::-1])[::-1]
    if method != "none":
        s[test] = 1.0 - np.minimum(1.0, q * (1.0 - warn) / alpha)
    n = local.shape[1]
    return s[:, :n], s[:, n:], m + scan_tests

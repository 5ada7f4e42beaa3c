"""Numba kernels of the composite indices: robust baselines and the fused normalise-and-group pass.

Every kernel has a slow, obvious twin in ``tests/indices_reference.py`` and a test comparing them.

Method codes (what normalised a value; :data:`METHOD_NAMES`):

== ============ ==========================================================================
0  imputed      no value, or no rule applies: left out and its weight spread over the group
1  reference    a configured reference range / target (``[[reference]]`` in indices.toml)
2  baseline     the Dataset's ``expected`` / ``scale`` (the detectors' learned baseline)
3  history      robust median / MAD of the series' previous cycles in the Dataset
4  thresholds   the catalog's warn / alarm levels as a reference range
5  peers        median / MAD of the same indicator over the other regions, same cycle
== ============ ==========================================================================

>>> import numpy as np
>>> e, s, n = history_baseline(np.array([[[1.0]], [[3.0]], [[2.0]], [[np.nan]]]), 2, 0.0, 1e-6)
>>> float(e[0, 0]), round(float(s[0, 0]), 4), int(n[0, 0])
(2.0, 1.4826, 3)
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.config import njit

METHOD_NAMES = ("imputed", "reference", "baseline", "history", "thresholds", "peers")
DIRECTIONS = {"up_bad": 0, "down_bad": 1, "both": 2}
MAD_TO_SIGMA = 1.482602218505602


@njit
def _median_sorted(buf, n):
    if n % 2 == 1:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@njit
def _robust(buf, n, floor_rel, floor_abs):
    """Median and floored 1.4826 x MAD of ``buf[:n]`` (reorders ``buf``)."""
    x = np.sort(buf[:n])
    med = _median_sorted(x, n)
    dev = np.empty(n)
    for k in range(n):
        dev[k] = abs(x[k] - med)
    dev.sort()
    s = MAD_TO_SIGMA * _median_sorted(dev, n)
    s = max(s, floor_rel * abs(med), floor_abs)
    return med, s


@njit(parallel=True)
def history_baseline(hist, min_n, floor_rel, floor_abs):
    """Robust baseline of every series from its previous cycles.

    Parameters
    ----------
    hist : ndarray, shape (H, n_indicator, n_region)
        The previous cycles (oldest first); NaN = missing.
    min_n : int
        Fewer finite values than this gives NaN.
    floor_rel, floor_abs : float
        The scale is at least ``floor_rel * |median|`` and ``floor_abs``.

    Returns
    -------
    expected, scale : ndarray (n_indicator, n_region)
        Median and ``max(1.4826 * MAD, floors)``; NaN where too few values.
    count : ndarray of int64
        Finite values seen.
    """
    H, ni, nr = hist.shape
    e = np.full((ni, nr), np.nan)
    s = np.full((ni, nr), np.nan)
    cnt = np.zeros((ni, nr), dtype=np.int64)
    for i in prange(ni):
        buf = np.empty(max(H, 1))
        for r in range(nr):
            n = 0
            for h in range(H):
                x = hist[h, i, r]
                if math.isfinite(x):
                    buf[n] = x
                    n += 1
            cnt[i, r] = n
            if n >= min_n and n > 0:
                m, sc = _robust(buf, n, floor_rel, floor_abs)
                e[i, r] = m
                s[i, r] = sc
    return e, s, cnt


@njit(parallel=True)
def peer_baseline(v, rows, min_n, floor_rel, floor_abs):
    """Cross-sectional robust baseline per indicator (median / MAD over regions) for ``rows``.

    Returns ``(expected, scale)`` of shape (n_indicator,), NaN for rows not asked for or with
    fewer than ``min_n`` finite values.
    """
    ni, nr = v.shape
    e = np.full(ni, np.nan)
    s = np.full(ni, np.nan)
    for i in prange(ni):
        if not rows[i]:
            continue
        buf = np.empty(max(nr, 1))
        n = 0
        for r in range(nr):
            x = v[i, r]
            if math.isfinite(x):
                buf[n] = x
                n += 1
        if n >= min_n and n > 0:
            m, sc = _robust(buf, n, floor_rel, floor_abs)
            e[i] = m
            s[i] = sc
    return e, s


@njit(inline="always", error_model="numpy")
def range_deficit(x, b0, b1, b2, b3):
    """Deficit of ``x`` against the range ``[b0 bad, b1 good, b2 good, b3 bad]`` (NaN = open side)."""
    d = 0.0
    if b2 == b2:  # upper side bounded
        if x >= b3:
            d = 1.0
        elif x > b2:
            d = (x - b2) / (b3 - b2)
    if b1 == b1:  # lower side bounded
        if x <= b0:
            d = 1.0
        elif x < b1:
            d = max(d, (b1 - x) / (b1 - b0))
    return d


@njit(inline="always", error_model="numpy")
def z_deficit(x, e, s, direction, tol, cap, floor_rel, floor_abs):
    """Deficit of ``x`` against baseline ``e`` and scale ``s``: 0 up to ``tol``, 1 from ``cap``."""
    s = max(s, max(floor_rel * abs(e), floor_abs))
    z = (x - e) / s
    if direction == 0:
        zd = max(z, 0.0)
    elif direction == 1:
        zd = max(-z, 0.0)
    else:
        zd = abs(z)
    return min(max((zd - tol) / (cap - tol), 0.0), 1.0)


@njit(inline="always", error_model="numpy")
def element_deficit(x, i, r, e1, s1, has1, e2, s2, has2, direction, cfg_ref, thr_ref, peer_e, peer_s,
                    tol, cap, floor_rel, floor_abs):
    """(deficit, method) of one value by the rule order; deficit NaN with method 0 when none applies."""
    if not math.isfinite(x):
        return np.nan, 0
    if cfg_ref[i, 1] == cfg_ref[i, 1] or cfg_ref[i, 2] == cfg_ref[i, 2]:
        return range_deficit(x, cfg_ref[i, 0], cfg_ref[i, 1], cfg_ref[i, 2], cfg_ref[i, 3]), 1
    if has1:
        e = e1[i, r]
        s = s1[i, r]
        if math.isfinite(e) and math.isfinite(s) and s >= 0.0:
            return z_deficit(x, e, s, direction[i], tol, cap, floor_rel, floor_abs), 2
    if has2:
        e = e2[i, r]
        s = s2[i, r]
        if math.isfinite(e) and math.isfinite(s):
            return z_deficit(x, e, s, direction[i], tol, cap, floor_rel, floor_abs), 3
    if thr_ref[i, 1] == thr_ref[i, 1] or thr_ref[i, 2] == thr_ref[i, 2]:
        return range_deficit(x, thr_ref[i, 0], thr_ref[i, 1], thr_ref[i, 2], thr_ref[i, 3]), 4
    e = peer_e[i]
    if math.isfinite(e):
        return z_deficit(x, e, peer_s[i], direction[i], tol, cap, floor_rel, floor_abs), 5
    return np.nan, 0


@njit(parallel=True, error_model="numpy")
def normalise_accumulate(v, e1, s1, has1, e2, s2, has2, direction, cfg_ref, thr_ref, peer_e, peer_s,
                         tol, cap, floor_rel, floor_abs,
                         group_of, group_w, n_groups, geometric, gfloor,
                         order, block_start, block_stop, parent_of, region_w, n_parents,
                         want_deficit, d_out, m_out):
    """One pass over ``v[indicator, region]``: normalise every value and accumulate the groups.

    Regions are visited in ``order`` by blocks (``block_start``/``block_stop`` into ``order``),
    one thread per block; blocks hold whole parents (streets), so no two threads write the
    same output cell.

    Parameters
    ----------
    v : ndarray (n_indicator, n_region)
    e1, s1, has1 : the Dataset's baseline (``has1`` False: ignored, may be 0 x 0)
    e2, s2, has2 : the history baseline
    direction : int8 (n_indicator,) 0 up_bad, 1 down_bad, 2 both
    cfg_ref, thr_ref : (n_indicator, 4) reference ranges, NaN rows = none
    peer_e, peer_s : (n_indicator,) cross-sectional baseline, NaN = none
    tol, cap, floor_rel, floor_abs : normalisation constants
    group_of : int64 (3, n_indicator) group of each indicator in each of the 3 sets (dimension,
        safety angle, epidemic risk), -1 = none
    group_w : float64 (3, n_indicator) its weight in that group
    n_groups : int, total groups over all sets
    geometric : bool, accumulate ``log(max(q, gfloor))`` instead of ``q``
    order, block_start, block_stop : region visiting order and thread blocks
    parent_of : int64 (n_region,) parent (street / block) of each region, or empty
    region_w : float64 (n_region,) weight of each region in its parent
    n_parents : int (0: no parent tables)
    want_deficit : bool; then ``d_out`` (float64) and ``m_out`` (int8) receive deficit and method

    Returns
    -------
    num, den : (n_groups, n_region) weighted sums of f(q) and of the weights of the values present
    pnum, pden : (n_indicator, n_parents) region-weighted sums of q and of the weights present
    unresolved : int64 (n_blocks, n_indicator) finite values no rule could normalise
    """
    ni, nr = v.shape
    nb = block_start.shape[0]
    num = np.zeros((n_groups, nr))
    den = np.zeros((n_groups, nr))
    pnum = np.zeros((ni, n_parents))
    pden = np.zeros((ni, n_parents))
    unresolved = np.zeros((nb, ni), dtype=np.int64)
    for b in prange(nb):
        j0 = block_start[b]
        j1 = block_stop[b]
        for i in range(ni):
            # per-indicator rule flags, hoisted out of the region loop
            dirn = direction[i]
            c0, c1, c2, c3 = cfg_ref[i, 0], cfg_ref[i, 1], cfg_ref[i, 2], cfg_ref[i, 3]
            has_cfg = c1 == c1 or c2 == c2
            t0, t1, t2, t3 = thr_ref[i, 0], thr_ref[i, 1], thr_ref[i, 2], thr_ref[i, 3]
            has_thr = t1 == t1 or t2 == t2
            pe = peer_e[i]
            ps = peer_s[i]
            has_peer = math.isfinite(pe)
            g0, g1, g2 = group_of[0, i], group_of[1, i], group_of[2, i]
            w0, w1, w2 = group_w[0, i], group_w[1, i], group_w[2, i]
            for j in range(j0, j1):
                r = order[j]
                x = v[i, r]
                m = 0
                d = np.nan
                if math.isfinite(x):
                    if has_cfg:
                        d = range_deficit(x, c0, c1, c2, c3)
                        m = 1
                    else:
                        if has1:
                            e = e1[i, r]
                            sc = s1[i, r]
                            if math.isfinite(e) and math.isfinite(sc) and sc >= 0.0:
                                d = z_deficit(x, e, sc, dirn, tol, cap, floor_rel, floor_abs)
                                m = 2
                        if m == 0 and has2:
                            e = e2[i, r]
                            sc = s2[i, r]
                            if math.isfinite(e) and math.isfinite(sc):
                                d = z_deficit(x, e, sc, dirn, tol, cap, floor_rel, floor_abs)
                                m = 3
                        if m == 0:
                            if has_thr:
                                d = range_deficit(x, t0, t1, t2, t3)
                                m = 4
                            elif has_peer:
                                d = z_deficit(x, pe, ps, dirn, tol, cap, floor_rel, floor_abs)
                                m = 5
                            else:
                                unresolved[b, i] += 1
                if want_deficit:
                    d_out[i, r] = d
                    m_out[i, r] = m
                if m == 0:
                    continue
                q = 1.0 - d
                f = math.log(max(q, gfloor)) if geometric else q
                if g0 >= 0:
                    num[g0, r] += w0 * f
                    den[g0, r] += w0
                if g1 >= 0:
                    num[g1, r] += w1 * f
                    den[g1, r] += w1
                if g2 >= 0:
                    num[g2, r] += w2 * f
                    den[g2, r] += w2
                if n_parents > 0:
                    p = parent_of[r]
                    w = region_w[r]
                    pnum[i, p] += w * q
                    pden[i, p] += w
    return num, den, pnum, pden, unresolved

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
from engine.order_stats import median_inplace

METHOD_NAMES = ("imputed", "reference", "baseline", "history", "thresholds", "peers")
DIRECTIONS = {"up_bad": 0, "down_bad": 1, "both": 2}
MAD_TO_SIGMA = 1.482602218505602


@njit
def _median_sorted(buf, n):
    if n % 2 == 1:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@njit(inline="always")
def _bisect_left(x, n, v):
    """First position in the sorted ``x[:n]`` whose value is not below ``v``."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if x[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always")
def _kth_deviation(x, n, p, med, k):
    """The ``k``-th smallest (1-based) of ``|x[j] - med|`` over the sorted ``x[:n]``, where
    ``x[:p] < med <= x[p:n]``: the deviations are two sorted runs, ``L[j] = med - x[p-1-j]``
    and ``U[j] = x[p+j] - med``; a binary search finds how many of the ``k`` smallest come
    from ``L`` (the usual k-th of two sorted arrays). Same values as sorting them."""
    nu = n - p
    lo = max(0, k - nu)
    hi = min(k, p)
    while lo < hi:                 # smallest i with L[i] >= U[k-i-1]
        i = (lo + hi) // 2
        if med - x[p - 1 - i] >= x[p + k - i - 1] - med:
            hi = i
        else:
            lo = i + 1
    i = lo
    best = -np.inf
    if i > 0:
        best = med - x[p - i]
    if k - i > 0:
        best = max(best, x[p + k - i - 1] - med)
    return best


@njit
def _robust_sorted(x, n, floor_rel, floor_abs):
    """:func:`_robust` of the already sorted ``x[:n]`` without sorting the deviations (their
    middle ones are found by binary search); the same values as sorting them, so the same
    result."""
    med = _median_sorted(x, n)
    p = _bisect_left(x, n, med)
    if n % 2 == 1:
        mad = _kth_deviation(x, n, p, med, n // 2 + 1)
    else:
        mad = 0.5 * (_kth_deviation(x, n, p, med, n // 2) + _kth_deviation(x, n, p, med, n // 2 + 1))
    s = MAD_TO_SIGMA * mad
    s = max(s, floor_rel * abs(med), floor_abs)
    return med, s


@njit
def _robust(buf, n, floor_rel, floor_abs):
    """Median and floored 1.4826 x MAD of ``buf[:n]`` (sorts ``buf[:n]`` in place)."""
    x = buf[:n]
    x.sort()
    return _robust_sorted(x, n, floor_rel, floor_abs)


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
            n = np.int64(0)    # not the literal 0: one compiled version of _robust (see _peer_row)
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
def history_baseline_cycles(hist, ends, window, min_n, floor_rel, floor_abs, e, s):
    """:func:`history_baseline` of many cycles at once, streaming along time.

    For each ``k``, the baseline of the window ``hist[max(0, ends[k] - window):ends[k]]``
    goes to ``e[k]``/``s[k]`` (n_indicator, n_region); ``ends`` ascending. Each series keeps
    its window's finite values sorted; a cycle adds the values that enter and removes those
    that leave (O(window) each) instead of gathering and sorting the whole window again.
    Equal to :func:`history_baseline` of each window (tested).

    Examples
    --------
    >>> h = np.array([1.0, 3.0, 2.0, np.nan, 7.0]).reshape(5, 1, 1)
    >>> e, s = np.empty((2, 1, 1)), np.empty((2, 1, 1))
    >>> history_baseline_cycles(h, np.array([3, 5]), 3, 2, 0.0, 1e-6, e, s)
    >>> e.ravel().tolist()
    [2.0, 4.5]
    """
    H, ni, nr = hist.shape
    nh = ends.shape[0]
    for i in prange(ni):
        win = np.empty(max(window, 1))
        for r in range(nr):
            n = np.int64(0)    # not the literal 0: one compiled version of _robust_sorted (see _peer_row)
            lo = 0
            hi = 0
            for k in range(nh):
                end = ends[k]
                start = max(0, end - window)
                if start >= hi:                      # no overlap with the last window
                    n = np.int64(0)
                    lo = start
                    hi = start
                while lo < start:                    # values leaving the window
                    x = hist[lo, i, r]
                    lo += 1
                    if math.isfinite(x):
                        j = _bisect_left(win, n, x)
                        for m in range(j, n - 1):
                            win[m] = win[m + 1]
                        n -= 1
                while hi < end:                      # values entering it
                    x = hist[hi, i, r]
                    hi += 1
                    if math.isfinite(x):
                        j = _bisect_left(win, n, x)
                        for m in range(n, j, -1):
                            win[m] = win[m - 1]
                        win[j] = x
                        n += 1
                if n >= min_n and n > 0:
                    e[k, i, r], s[k, i, r] = _robust_sorted(win, n, floor_rel, floor_abs)
                else:
                    e[k, i, r] = np.nan
                    s[k, i, r] = np.nan


@njit
def _robust_select(buf, n, floor_rel, floor_abs):
    """:func:`_robust` of ``buf[:n]`` by selection instead of a sort (``buf[:n]`` is overwritten
    with the deviations): the median and the MAD are order statistics, so the same values.
    Each deviation is ``med - x`` below the median and ``x - med`` from it up, the operations
    :func:`_kth_deviation` does; no sort code is compiled."""
    med = median_inplace(buf, n)
    for j in range(n):
        x = buf[j]
        buf[j] = med - x if x < med else x - med
    mad = median_inplace(buf, n)
    s = MAD_TO_SIGMA * mad
    s = max(s, floor_rel * abs(med), floor_abs)
    return med, s


@njit
def _peer_row(v, i, min_n, floor_rel, floor_abs, buf):
    """Robust (median, scale) of the finite values of row ``v[i]``; NaN when fewer than ``min_n``.
    ``v`` float32 or float64 (its values are copied to the float64 ``buf``: exact).

    ``i`` is int64 at every call (a ``prange`` index is uint64: cast), and ``n`` starts as an
    int64, not the literal 0: each distinct argument type compiles this function and the ones it
    calls once more (docs/report.md, "Run pipeline and compile time", fifth session)."""
    n = np.int64(0)
    for r in range(v.shape[1]):
        x = np.float64(v[i, r])
        if math.isfinite(x):
            buf[n] = x
            n += 1
    if n >= min_n and n > 0:
        return _robust_select(buf, n, floor_rel, floor_abs)
    return np.nan, np.nan


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
        if rows[i]:
            e[i], s[i] = _peer_row(v, np.int64(i), min_n, floor_rel, floor_abs, np.empty(max(nr, 1)))
    return e, s


@njit
def peer_baseline_cycles(v, rows, min_n, floor_rel, floor_abs, e, s):
    """:func:`peer_baseline` of every cycle of ``v`` (k, n_indicator, n_region) for ``rows``
    (k, n_indicator), on the calling thread, into ``e``/``s`` (k, n_indicator), NaN elsewhere."""
    buf = np.empty(max(v.shape[2], 1))
    for t in range(v.shape[0]):
        for i in range(v.shape[1]):
            e[t, i] = np.nan
            s[t, i] = np.nan
            if rows[t, i]:
                e[t, i], s[t, i] = _peer_row(v[t], i, min_n, floor_rel, floor_abs, buf)


@njit
def rows_needing_peers(v, e1, s1, has1, e2, s2, hpos, cfg_ref, thr_ref, out):
    """``out[t, i]``: row ``i`` of cycle ``t`` has a finite value that only peers can normalise --
    its row has no reference range and no thresholds, and the value has no usable baseline from
    the Dataset (``e1``/``s1`` finite, scale >= 0) or the history (``e2``/``s2`` at ``hpos[t]``).
    Exactly the rows whose values :func:`normalise_accumulate` counts as unresolved when no peer
    baseline is given (tested), found without normalising anything: a row stops at its first
    such value.

    Examples
    --------
    >>> v = np.array([[[1.0, 2.0], [3.0, np.nan]]])              # 1 cycle, 2 rows, 2 regions
    >>> e = np.array([[[1.0, np.nan], [1.0, 1.0]]])
    >>> ref = np.full((2, 4), np.nan)
    >>> out = np.zeros((1, 2), np.bool_)
    >>> rows_needing_peers(v, e, np.ones_like(e), True, v[:0], v[:0], np.array([-1]), ref, ref, out)
    >>> out.tolist()
    [[True, False]]
    """
    k, ni, nr = v.shape
    for t in range(k):
        h = hpos[t]
        has2 = h >= 0
        for i in range(ni):
            out[t, i] = False
            if cfg_ref[i, 1] == cfg_ref[i, 1] or cfg_ref[i, 2] == cfg_ref[i, 2]:
                continue
            if thr_ref[i, 1] == thr_ref[i, 1] or thr_ref[i, 2] == thr_ref[i, 2]:
                continue
            if has1 and not has2:
                # the run's case: branch-free (``y - y == 0`` is "finite"; NaN patterns are random,
                # a branch per value mispredicted a third of the time)
                bad = 0
                for r in range(nr):
                    x = np.float64(v[t, i, r])
                    e = np.float64(e1[t, i, r])
                    sc = np.float64(s1[t, i, r])
                    ok = ((e - e) == 0.0) & ((sc - sc) == 0.0) & (sc >= 0.0)
                    bad += ((x - x) == 0.0) & (ok == False)  # noqa: E712
                out[t, i] = bad > 0
                continue
            for r in range(nr):
                x = np.float64(v[t, i, r])
                if not math.isfinite(x):
                    continue
                if has1:
                    e = np.float64(e1[t, i, r])
                    sc = np.float64(s1[t, i, r])
                    if math.isfinite(e) and math.isfinite(sc) and sc >= 0.0:
                        continue
                if has2:
                    if math.isfinite(e2[h, i, r]) and math.isfinite(s2[h, i, r]):
                        continue
                out[t, i] = True
                break


@njit(error_model="numpy")
def copy_rows_needing_peers(src, step, e1, s1, cfg_ref, thr_ref, v, out):
    """``v[t] = src[t * step]`` (a copy of the stored steps; ``src`` of ``v``'s dtype) and ``out[t, i]`` as
    :func:`rows_needing_peers` gives it with the Dataset's baseline ``e1``/``s1`` and no history
    baseline, in one read of the values: a run's stored steps are every ``step``-th cycle of the
    day's values (``src``: a C-ordered view from the first to the last), copied here anyway.

    The flags in the values' own dtype: ``x - x == 0`` (finite), ``s >= 0`` are the same tests in
    float32 as in float64 (exact conversions), so the same flags (tested).

    Examples
    --------
    >>> src = np.array([[[9.0, 9.0], [9.0, 9.0]], [[1.0, 2.0], [3.0, np.nan]]])   # step 1: cycle 1
    >>> e = np.array([[[1.0, np.nan], [1.0, 1.0]]])
    >>> ref = np.full((2, 4), np.nan)
    >>> v = np.empty((1, 2, 2)); out = np.zeros((1, 2), np.bool_)
    >>> copy_rows_needing_peers(src[1:], 1, e, np.ones_like(e), ref, ref, v, out)
    >>> out.tolist(), v[0, 0].tolist()
    ([[True, False]], [1.0, 2.0])
    """
    k, ni, nr = v.shape
    for t in range(k):
        ts = t * step
        for i in range(ni):
            if (cfg_ref[i, 1] == cfg_ref[i, 1] or cfg_ref[i, 2] == cfg_ref[i, 2]
                    or thr_ref[i, 1] == thr_ref[i, 1] or thr_ref[i, 2] == thr_ref[i, 2]):
                for r in range(nr):
                    v[t, i, r] = src[ts, i, r]
                out[t, i] = False
                continue
            # branch-free (as rows_needing_peers): a finite value without a usable baseline
            bad = 0
            for r in range(nr):
                x = src[ts, i, r]
                v[t, i, r] = x
                e = e1[t, i, r]
                sc = s1[t, i, r]
                ok = ((e - e) == 0.0) & ((sc - sc) == 0.0) & (sc >= 0.0)
                bad += ((x - x) == 0.0) & (ok == False)  # noqa: E712
            out[t, i] = bad > 0


@njit(error_model="numpy")
def parent_ratio_rollup(pnum, pden, up, q, sn, sd):
    """One level of :meth:`~engine.indices.compute.Prepared.parent_tables` on (rows, n) sums:
    ``q = pnum / pden`` where ``pden > 0``, else NaN; with ``up`` (the n regions' parents, or
    empty) the next level's sums ``sn``/``sd`` (rows, n_up): each parent's regions added in
    order from +0.0 (numpy's ``sn[..., up[c]] += pnum[..., c]`` for c in order: the same sums)."""
    rows, n = pnum.shape
    roll = up.shape[0] > 0
    n_up = sn.shape[1]
    for j in range(rows):
        for c in range(n):
            d = pden[j, c]
            x = pnum[j, c] / d
            q[j, c] = x if d > 0.0 else np.nan
        if roll:
            for u in range(n_up):
                sn[j, u] = 0.0
                sd[j, u] = 0.0
            for c in range(n):
                u = up[c]
                sn[j, u] += pnum[j, c]
                sd[j, u] += pden[j, c]


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


@njit(inline="always", error_model="numpy")
def _normalise_row(va, ov, ea, sa, has1, e2a, s2a, o2, has2, i, n, direction, cfg_ref, thr_ref, pe, ps,
                   consts, geometric, qb, fb, okb, db, mb, want_deficit):
    """Normalise a segment of indicator ``i``'s row into ``qb`` (q), ``fb`` (what is summed: q or
    its log) and ``okb`` (normalised at all); deficit and method into ``db``/``mb`` when
    ``want_deficit``. ``consts`` = (tol, cap, floor_rel, floor_abs, gfloor). Returns the finite
    values no rule normalised.

    Value ``k < n`` of the segment is ``va[ov + k]``, its baseline ``ea[ov + k]`` / ``sa[ov + k]``,
    its history baseline ``e2a[o2 + k]`` / ``s2a[o2 + k]`` (flat arrays and offsets, not a view a
    row: each view costs an atomic reference count pair), its peers ``pe`` / ``ps``. The offsets
    are unsigned: a signed index gets a negative-index fix-up per value, which kept the fast loop
    from vectorising."""
    tol, cap, floor_rel, floor_abs, gfloor = consts
    dirn = direction[i]
    c0, c1, c2, c3 = cfg_ref[i, 0], cfg_ref[i, 1], cfg_ref[i, 2], cfg_ref[i, 3]
    has_cfg = c1 == c1 or c2 == c2
    t0, t1, t2, t3 = thr_ref[i, 0], thr_ref[i, 1], thr_ref[i, 2], thr_ref[i, 3]
    has_thr = t1 == t1 or t2 == t2
    has_peer = math.isfinite(pe)
    unresolved = 0
    rest = True
    if has1 and not has_cfg and not want_deficit:
        # the usual case first, without the rule chain: a value with a usable baseline. No
        # branch on the data (a third of the values are missing, at random: a branch per value
        # was mispredicted often): every value is normalised, ``okb`` says which count
        n_rest = 0
        for k in range(n):
            x = np.float64(va[ov + np.uint64(k)])
            e = np.float64(ea[ov + np.uint64(k)])
            sc = np.float64(sa[ov + np.uint64(k)])
            fin = (x - x) == 0.0
            ok = fin & ((e - e) == 0.0) & ((sc - sc) == 0.0) & (sc >= 0.0)
            q = 1.0 - z_deficit(x, e, sc, dirn, tol, cap, floor_rel, floor_abs)
            qb[k] = q
            fb[k] = math.log(max(q, gfloor)) if geometric else q
            okb[k] = ok
            n_rest += fin & (ok == False)  # noqa: E712
        rest = n_rest > 0
    for k in range(n if rest else 0):
        x = np.float64(va[ov + np.uint64(k)])
        if not want_deficit and has1 and not has_cfg and okb[k]:
            continue                         # done above
        m = 0
        d = np.nan
        if math.isfinite(x):
            if has_cfg:
                d = range_deficit(x, c0, c1, c2, c3)
                m = 1
            else:
                if has1:
                    e = np.float64(ea[ov + np.uint64(k)])
                    sc = np.float64(sa[ov + np.uint64(k)])
                    if math.isfinite(e) and math.isfinite(sc) and sc >= 0.0:
                        d = z_deficit(x, e, sc, dirn, tol, cap, floor_rel, floor_abs)
                        m = 2
                if m == 0 and has2:
                    e = e2a[o2 + np.uint64(k)]
                    sc = s2a[o2 + np.uint64(k)]
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
                        unresolved += 1
        if want_deficit:
            db[k] = d
            mb[k] = m
        q = 1.0 - d
        qb[k] = q
        fb[k] = math.log(max(q, gfloor)) if geometric else q
        okb[k] = m != 0
    return unresolved


@njit(inline="always", error_model="numpy")
def _parent_sums1(pnum, pden, t, i, j, pq, pw, run_a, run_p, n_runs):
    """Row ``i``'s region-weighted sums into its parents: ``pq[j]`` (weight x q, or +0.0) and
    ``pw[j]`` (the weight, or +0.0) added in region order over each run ``u`` of one parent."""
    for u in range(n_runs):
        p = run_p[u]
        acc_n = pnum[t, i, p]
        acc_d = pden[t, i, p]
        for k in range(run_a[u], run_a[u + 1]):
            acc_n += pq[j, k]
            acc_d += pw[j, k]
        pnum[t, i, p] = acc_n
        pden[t, i, p] = acc_d


@njit(inline="always", error_model="numpy")
def _parent_sums4(pnum, pden, t, i, pq, pw, run_a, run_p, n_runs):
    """:func:`_parent_sums1` of rows ``i .. i + 3`` (slots 0-3) in one loop: a row's two sums are
    each a chain of dependent additions (bound by the addition's latency); four rows' eight
    chains run side by side. Each sum adds the same terms in the same order as alone."""
    for u in range(n_runs):
        p = run_p[u]
        n0 = pnum[t, i, p]
        n1 = pnum[t, i + 1, p]
        n2 = pnum[t, i + 2, p]
        n3 = pnum[t, i + 3, p]
        d0 = pden[t, i, p]
        d1 = pden[t, i + 1, p]
        d2 = pden[t, i + 2, p]
        d3 = pden[t, i + 3, p]
        for k in range(run_a[u], run_a[u + 1]):
            n0 += pq[0, k]
            n1 += pq[1, k]
            n2 += pq[2, k]
            n3 += pq[3, k]
            d0 += pw[0, k]
            d1 += pw[1, k]
            d2 += pw[2, k]
            d3 += pw[3, k]
        pnum[t, i, p] = n0
        pnum[t, i + 1, p] = n1
        pnum[t, i + 2, p] = n2
        pnum[t, i + 3, p] = n3
        pden[t, i, p] = d0
        pden[t, i + 1, p] = d1
        pden[t, i + 2, p] = d2
        pden[t, i + 3, p] = d3


@njit(error_model="numpy")
def _accumulate_task(t, b, data, rules, consts, geometric, groups, regions, n_parents, outs, want_deficit, dm_out):
    """Normalise and accumulate cycle ``t``, region block ``b`` (see :func:`normalise_accumulate`).

    Works on the block's row segments: read in place when the block's regions are contiguous in
    memory (the usual case: regions stored street by street), else from gathered copies. Group
    sums go to block-local tables first and are stored once at the end; parent sums stay in
    registers over each run of one parent, four rows at a time. Every sum adds the same terms in
    the same order as the plain element-by-element loop of ``tests/indices_reference.py``
    describes. No array is viewed or rebound inside the row loop (numba keeps an atomic
    reference count pair for each, per row).
    """
    v, e1, s1, has1, e2, s2, hpos, peer_e, peer_s = data
    direction, cfg_ref, thr_ref = rules
    group_of, group_w = groups
    order, block_start, block_stop, parent_of, region_w = regions
    num, den, pnum, pden, unresolved = outs
    d_out, m_out = dm_out
    ng = num.shape[1]
    j0 = block_start[b]
    j1 = block_stop[b]
    nj = j1 - j0
    if nj <= 0:
        return
    r0 = order[j0]
    contig = True
    for k in range(nj):
        if order[j0 + k] != r0 + k:
            contig = False
    h = hpos[t]
    has2 = h >= 0
    numb = np.zeros((ng, nj))
    denb = np.zeros((ng, nj))
    qb = np.empty(nj)
    fb = np.empty(nj)
    okb = np.empty(nj, dtype=np.bool_)
    db = np.empty(nj)
    mb = np.empty(nj, dtype=np.int8)
    vb = np.empty(nj, dtype=v.dtype)          # the dtype of the input (float32 or float64)
    eb = np.full(nj, np.nan, dtype=e1.dtype)
    sb = np.full(nj, np.nan, dtype=s1.dtype)
    e2b = np.full(nj, np.nan)
    s2b = np.full(nj, np.nan)
    wb = np.empty(nj)
    pq = np.empty((4, nj))                    # four rows' parent terms (weight x q) and weights
    pw = np.empty((4, nj))
    # the block's runs of one parent: run ``u`` is ``[run_a[u], run_a[u + 1])`` of parent ``run_p[u]``
    run_a = np.empty(nj + 1, dtype=np.int64)
    run_p = np.empty(nj, dtype=np.int64)
    n_runs = 0
    if n_parents > 0:
        for k in range(nj):
            p = parent_of[order[j0 + k]]
            wb[k] = region_w[order[j0 + k]]
            if k == 0 or p != run_p[n_runs - 1]:     # (run_p[n_runs - 1]: the previous region's parent)
                run_a[n_runs] = k
                run_p[n_runs] = p
                n_runs += 1
        run_a[n_runs] = nj
    ni = v.shape[1]
    # where a row's segment is read: in place (contiguous regions: the flat arrays at the row's
    # offset) or from the gathered copies (offset 0); no view a row (each costs reference counts)
    va, ea, sa, e2a, s2a = vb, eb, sb, e2b, s2b
    nr = v.shape[2]
    if contig:
        va = v.reshape(-1)
        if has1:
            ea = e1.reshape(-1)
            sa = s1.reshape(-1)
        if has2:
            e2a = e2.reshape(-1)
            s2a = s2.reshape(-1)
    for i in range(ni):
        j = i % 4                      # the row's slot in pq / pw
        ov = np.uint64(0)
        o2 = np.uint64(0)
        if contig:
            ov = np.uint64((t * ni + i) * nr + r0)
            o2 = np.uint64((max(h, 0) * ni + i) * nr + r0)
        else:
            for k in range(nj):
                r = order[j0 + k]
                vb[k] = v[t, i, r]
                if has1:
                    eb[k] = e1[t, i, r]
                    sb[k] = s1[t, i, r]
                if has2:
                    e2b[k] = e2[h, i, r]
                    s2b[k] = s2[h, i, r]
        unresolved[t, b, i] += _normalise_row(va, ov, ea, sa, has1, e2a, s2a, o2, has2, i, nj, direction,
                                              cfg_ref, thr_ref, peer_e[t, i], peer_s[t, i], consts, geometric,
                                              qb, fb, okb, db, mb, want_deficit)
        if want_deficit:
            for k in range(nj):
                r = order[j0 + k]
                d_out[t, i, r] = db[k]
                m_out[t, i, r] = mb[k]
        # the sums without a branch on the data: a value that does not count adds +0.0, which
        # leaves every sum as it was (a sum here starts at +0.0 and so is never -0.0)
        for s in range(group_of.shape[0]):
            g = group_of[s, i]
            if g < 0:
                continue
            w = group_w[s, i]
            for k in range(nj):
                o = okb[k]
                # the product first, then the choice: numba lowers ``w * fb[k] if o else 0.0`` as a
                # branch around the multiplication, and the loop was not vectorised
                x = w * fb[k]
                numb[g, k] += x if o else 0.0
                denb[g, k] += w if o else 0.0
        if n_parents > 0:
            # the parents' terms of the row, branch-free (a vectorised loop; a term that does not
            # count is +0.0, as the sums below always added); summed four rows at a time
            for k in range(nj):
                o = okb[k]
                w = wb[k]
                x = w * qb[k]
                pq[j, k] = x if o else 0.0
                pw[j, k] = w if o else 0.0
            if j == 3:
                _parent_sums4(pnum, pden, t, i - 3, pq, pw, run_a, run_p, n_runs)
            elif i == ni - 1:
                for jj in range(j + 1):
                    _parent_sums1(pnum, pden, t, i - j + jj, jj, pq, pw, run_a, run_p, n_runs)
    for g in range(ng):
        for k in range(nj):
            r = order[j0 + k]
            num[t, g, r] = numb[g, k]
            den[t, g, r] = denb[g, k]


@njit(parallel=True, error_model="numpy")
def normalise_accumulate(cycles, v, e1, s1, has1, e2, s2, hpos, direction, cfg_ref, thr_ref, peer_e, peer_s,
                         tol, cap, floor_rel, floor_abs, group_of, group_w, geometric, gfloor,
                         order, block_start, block_stop, parent_of, region_w, n_parents,
                         num, den, pnum, pden, unresolved, want_deficit, d_out, m_out):
    """One pass over ``v[cycle, indicator, region]``: normalise every value, accumulate the groups.

    The work is split in tasks (cycle, region block), one thread per task: regions are visited
    in ``order`` by blocks (``block_start``/``block_stop`` into ``order``); blocks hold whole
    parents (streets), so no two tasks write the same output cell. The outputs are
    preallocated and must be zero for the cycles computed (they are accumulated into).

    Parameters
    ----------
    cycles : int64 (k,) the cycles (positions along the first axis) to compute
    v : ndarray (T, n_indicator, n_region)
    e1, s1, has1 : the Dataset's baseline, same shape as ``v`` (``has1`` False: ignored, may be
        0 x 0 x 0)
    e2, s2 : (H, n_indicator, n_region) history baselines; ``hpos`` int64 (T,) gives the one of
        each cycle, -1 = none
    direction : int8 (n_indicator,) 0 up_bad, 1 down_bad, 2 both
    cfg_ref, thr_ref : (n_indicator, 4) reference ranges, NaN rows = none
    peer_e, peer_s : (T, n_indicator) cross-sectional baseline, NaN = none
    tol, cap, floor_rel, floor_abs : normalisation constants
    group_of : int64 (3, n_indicator) group of each indicator in each of the 3 sets (dimension,
        safety angle, epidemic risk), -1 = none
    group_w : float64 (3, n_indicator) its weight in that group
    geometric : bool, accumulate ``log(max(q, gfloor))`` instead of ``q``
    order, block_start, block_stop : region visiting order and thread blocks
    parent_of : int64 (n_region,) parent (street / block) of each region, or empty
    region_w : float64 (n_region,) weight of each region in its parent
    n_parents : int (0: no parent tables)
    num, den : (T, n_groups, n_region) out: weighted sums of f(q) and of the weights of the
        values present
    pnum, pden : (T, n_indicator, n_parents) out: region-weighted sums of q and of the weights
        present
    unresolved : int64 (T, n_blocks, n_indicator) out: finite values no rule could normalise
    want_deficit : bool; then ``d_out`` (float64) and ``m_out`` (int8), shaped like ``v``,
        receive deficit and method
    """
    nb = block_start.shape[0]
    data = (v, e1, s1, has1, e2, s2, hpos, peer_e, peer_s)
    rules = (direction, cfg_ref, thr_ref)
    consts = (tol, cap, floor_rel, floor_abs, gfloor)
    groups = (group_of, group_w)
    regions = (order, block_start, block_stop, parent_of, region_w)
    outs = (num, den, pnum, pden, unresolved)
    dm_out = (d_out, m_out)
    for k in prange(cycles.shape[0] * nb):
        _accumulate_task(cycles[k // nb], k % nb, data, rules, consts, geometric, groups, regions, n_parents,
                         outs, want_deficit, dm_out)


@njit(error_model="numpy")
def normalise_accumulate_serial(cycles, v, e1, s1, has1, e2, s2, hpos, direction, cfg_ref, thr_ref, peer_e, peer_s,
                                tol, cap, floor_rel, floor_abs, group_of, group_w, geometric, gfloor,
                                order, block_start, block_stop, parent_of, region_w, n_parents,
                                num, den, pnum, pden, unresolved, want_deficit, d_out, m_out):
    """:func:`normalise_accumulate` on the calling thread (small inputs: no thread start-up)."""
    nb = block_start.shape[0]
    data = (v, e1, s1, has1, e2, s2, hpos, peer_e, peer_s)
    rules = (direction, cfg_ref, thr_ref)
    consts = (tol, cap, floor_rel, floor_abs, gfloor)
    groups = (group_of, group_w)
    regions = (order, block_start, block_stop, parent_of, region_w)
    outs = (num, den, pnum, pden, unresolved)
    dm_out = (d_out, m_out)
    for k in range(cycles.shape[0] * nb):
        _accumulate_task(cycles[k // nb], k % nb, data, rules, consts, geometric, groups, regions, n_parents,
                         outs, want_deficit, dm_out)


@njit(error_model="numpy")
def table_group_sums(q, group_of, group_w, geometric, gfloor, num, den):
    """Group sums of a table of normalised scores, the sums :func:`normalise_accumulate` makes.

    ``q`` (n_indicator, n_col), NaN = missing; ``num``/``den`` (n_groups, n_col) out, zeroed
    here: ``num[g] = sum w f(q)`` and ``den[g] = sum w`` over the indicators of group ``g``
    with a finite ``q`` (``f = log(max(q, gfloor))`` when ``geometric``, else ``q``).
    """
    ni, nc = q.shape
    num[:, :] = 0.0
    den[:, :] = 0.0
    for i in range(ni):
        for k in range(group_of.shape[0]):
            g = group_of[k, i]
            if g < 0:
                continue
            w = group_w[k, i]
            for c in range(nc):
                x = q[i, c]
                if x == x:
                    f = math.log(max(x, gfloor)) if geometric else x
                    num[g, c] += w * f
                    den[g, c] += w

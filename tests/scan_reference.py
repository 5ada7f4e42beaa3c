"""Slow, obvious references for the scan's cells and its tail p-values (engine/detect/scan.py).

* :func:`cells_reference`: the disjoint counts of a ring sampled every cycle (a count over
  ``stride`` cycles, newest first), grouped into the scan's cells (window lengths 1, 2, 3, 4, 6,
  8, 12, ... counts, then all of them).
* :func:`tail_bound_reference`: the union bound of ``P(max LLR >= L)`` over every zone-window,
  Poisson tails from scipy.
* :func:`scan_reference_cells`: :func:`detect_reference.scan_reference` on those cells, with the
  p-values of clusters no replica reached refined by the bound, and the window in cycles -- what
  :func:`engine.detect.scan.scan_indicator` must return.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import poisson

import detect_reference as ref


def window_lengths_reference(n_cnt):
    """1, 2, 3, 4, then alternately x1.5 and x4/3 (6, 8, 12, 16, 24, ...), below ``n_cnt``; then ``n_cnt``."""
    out, a = [], 1
    while a < n_cnt:
        out.append(a)
        a = a + 1 if a < 4 else (a * 3 // 2 if a & (a - 1) == 0 else a * 4 // 3)
    return out + [n_cnt] if n_cnt >= 1 else out


def cells_reference(obs, exp, stride):
    """``obs``, ``exp``: (fill, n), row 0 the newest cycle. Returns (cells_obs, cells_exp, lengths):
    cells (nc, n) float64 newest first, cell ``w`` the sum of the counts at rows ``stride j`` for
    ``j`` in ``lengths[w - 1] .. lengths[w] - 1``."""
    fill, n = obs.shape
    n_cnt = (fill - 1) // stride + 1 if fill else 0
    lengths = window_lengths_reference(n_cnt)
    co = np.zeros((len(lengths), n))
    ce = np.zeros((len(lengths), n))
    j0 = 0
    for w, j1 in enumerate(lengths):
        for r in range(n):
            so = se = 0.0
            for j in range(j0, j1):
                so += float(obs[stride * j, r])
                se += float(exp[stride * j, r])
            co[w, r], ce[w, r] = so, se
        j0 = j1
    return co, ce, lengths


def _llr(c, m):
    return c * math.log(c / m) - (c - m) if (c > m and m > 0) else 0.0


def tail_bound_reference(cells_exp, zones, L):
    """``sum`` over zones (every prefix of every list in ``zones``) and windows (cumulative cells) of
    ``P(Poisson(M) >= c)``, ``c`` the smallest count whose LLR against ``M`` reaches ``L``; each term
    at most ``exp(-L)`` (Chernoff), the sum at most 1. Also returns the Chernoff sum ``N exp(-L)``."""
    M = np.cumsum(cells_exp, axis=0)
    exact = chern = 0.0
    for z in zones:
        for s in range(1, len(z) + 1):
            for w in range(M.shape[0]):
                m = float(M[w, z[:s]].sum())
                if m <= 0:
                    continue
                c = math.floor(m) + 1
                while _llr(c, m) < L - 1e-9 * max(1.0, abs(L)):
                    c += 1
                exact += min(float(poisson.sf(c - 1, m)), math.exp(-L))
                chern += math.exp(-L)
    return min(exact, 1.0), min(chern, 1.0)


def scan_reference_cells(obs, exp, zones, replicas, seed, alpha, table, stride=1, tail=False):
    """What ``scan_indicator`` returns for a ring whose newest ``fill`` cycles are ``obs``, ``exp``
    (row 0 the newest): the reference scan of the cells; with ``tail``, a cluster that no replica
    reached (``p = 1 / (R + 1)``, not stopped) gets ``min(1 / (R + 1), bound)`` where the Chernoff sum is
    below ``1 / (R + 1)``; the window in cycles."""
    co, ce, lengths = cells_reference(obs, exp, stride)
    want = ref.scan_reference(co, ce, zones, replicas, seed, alpha, table)
    floor_p = 1.0 / (replicas + 1.0)
    for q in range(want.shape[0]):
        if np.isnan(want[q, 0]):
            continue
        if tail and want[q, 1] == floor_p:
            exact, chern = tail_bound_reference(ce, zones, want[q, 0])
            if chern < floor_p and exact < floor_p:
                want[q, 1] = exact
        want[q, 4] = lengths[int(want[q, 4]) - 1] * stride
    return want


def exceed_lower_bound_reference(mcell, Mcell, fill, single, L, count_for, stop=math.inf):
    """The screen's bound (``engine.detect.scan._exceed_lower_bound``) written out: for each region
    that is a zone of its own, in order, the probability that some window's cumulative count reaches
    its threshold (``count_for(M, L)``: the smallest count whose LLR against the window's expectation
    ``M`` reaches ``L``), by a recursion over the windows on the counts below ``min(max threshold,
    SCREEN_CAP)``; regions with the last bounded one's cell means take its value, regions with a cell
    above ``NORMAL_ABOVE`` are left out; ``1 - prod (1 - e_r)`` in logs, ending once its log is below
    ``log1p(-stop)`` by the kernel's margin. The same operations in the same order, in Python floats."""
    from engine.detect.scan import NORMAL_ABOVE, SCREEN_CAP

    n_reg = len(single)
    log_none = 0.0
    log_stop = -math.inf
    if stop < 1.0:
        log_stop = math.log1p(-stop)
        log_stop -= 1e-9 * abs(log_stop) + 1e-300
    prev, prev_e = -1, 0.0
    for r in range(n_reg):
        if not single[r]:
            continue
        row = [float(mcell[r * fill + w]) for w in range(fill)]
        if prev >= 0 and row == [float(mcell[prev * fill + w]) for w in range(fill)]:
            if prev_e > 0.0:
                log_none += math.log1p(-prev_e)
                if log_none < log_stop:
                    return -math.expm1(log_none)
            continue
        prev, prev_e = r, 0.0
        if any(m > NORMAL_ABOVE for m in row):
            continue
        thr = [float(count_for(float(Mcell[r * fill + w]), L)) for w in range(fill)]
        finite = [t for t in thr if t < math.inf]
        cmax = max(finite + [0.0])
        if cmax == 0.0:
            continue
        cap = int(cmax) if cmax < SCREEN_CAP else SCREEN_CAP
        dist = [1.0] + [0.0] * (cap - 1)
        exc = 0.0
        for w in range(fill):
            m = row[w]
            pk = math.exp(-m) if m > 0.0 else 1.0
            pmf, cum, cdf = [], [], 0.0
            for k in range(cap + 1):
                pmf.append(pk)
                cum.append(cdf)
                cdf += pk
                pk *= m / (k + 1)
            new = [0.0] * cap
            for c in range(cap):
                d = dist[c]
                if d == 0.0:
                    continue
                k = 0
                while True:
                    t = c + k
                    if t >= thr[w]:
                        tail = 1.0 - cum[k]
                        exc += d * (tail if tail > 0.0 else 0.0)
                        break
                    if t >= cap or (m <= 0.0 and k > 0):
                        break
                    new[t] += d * pmf[k]
                    k += 1
            dist = new
        if exc >= 1.0:
            return 1.0
        prev_e = exc
        log_none += math.log1p(-exc)
        if log_none < log_stop:
            return -math.expm1(log_none)
    return -math.expm1(log_none)


def _region_tails(mcell, Mcell, fill, single, L, count_for):
    """For each region the exact bound counts (a zone of its own, no cell above ``NORMAL_ABOVE``): the
    Poisson tails ``P(Poisson(M_w) >= threshold_w)`` (scipy) of its windows that end a run of equal
    thresholds (``count_for(M, L)``, finite and at most ``SCREEN_CAP``)."""
    from engine.detect.scan import NORMAL_ABOVE, SCREEN_CAP

    out = []
    for r in range(len(single)):
        if not single[r] or any(float(mcell[r * fill + w]) > NORMAL_ABOVE for w in range(fill)):
            continue
        thr = [count_for(float(Mcell[r * fill + w]), L) for w in range(fill)]
        out.append([float(poisson.sf(thr[w] - 1, float(Mcell[r * fill + w]))) for w in range(fill)
                    if thr[w] != math.inf and thr[w] <= SCREEN_CAP and not (w + 1 < fill and thr[w + 1] == thr[w])])
    return out


def exceed_union_reference(mcell, Mcell, fill, single, L, count_for):
    """What the screen's upper fast bound (``engine.detect.scan._exceed_fast_bound``) must be at or above:
    summed over the regions, the sum of :func:`_region_tails` (at most 1 a region). At or above the exact
    bound: a region's windows reach their thresholds only if one of these windows does."""
    return sum(min(sum(t), 1.0) for t in _region_tails(mcell, Mcell, fill, single, L, count_for))


def exceed_max_reference(mcell, Mcell, fill, single, L, count_for):
    """What the screen's lower fast bound must be at or below: ``1 - prod (1 - max tail)`` over the regions
    (:func:`_region_tails`). At or below the exact bound: each such window's event is one it counts."""
    none = 1.0
    for t in _region_tails(mcell, Mcell, fill, single, L, count_for):
        none *= 1.0 - max(t, default=0.0)
    return 1.0 - none


def condition_on_totals_reference(obs, mu, prior=None, hours: float = 0.0, events: float = 0.0):
    """What ``engine.detect.detectors.condition_on_totals`` means, one row (one cycle's count over the
    regions, the last axis) at a time, in Python floats, ``mu`` changed in place:

    * the taking regions are those where both ``obs`` and ``mu`` are finite;
    * ``tot_o`` (the observed total, at least 1) and ``tot_m`` (the expected total) are their exact sums
      (``math.fsum``: correctly rounded);
    * no prior (``prior`` None or ``events`` not > 0): every region's ``mu`` times ``tot_o / tot_m``
      (unchanged where ``tot_m`` is 0);
    * with a prior ``w``: where ``tot_m > 0`` and the taking regions' weights sum to ``tot_w > 0``, a
      taking region gets ``tot_o (hours mu_r + kappa w_r / tot_w) / (hours tot_m + kappa)``, ``kappa =
      events n``, ``n`` the taking regions; every other region (and every region of a row where either
      total is 0) is scaled as without the prior.

    Independent of the engine's numpy form and kernel (their sums are pairwise in the counts' dtype:
    the test compares with a tolerance)."""
    obs = np.asarray(obs)
    n_reg = mu.shape[-1]
    o2 = obs.reshape(-1, n_reg)
    m2 = mu.reshape(-1, n_reg)
    assert np.shares_memory(m2, mu) or mu.size == 0
    with_prior = prior is not None and events > 0
    for t in range(m2.shape[0]):
        take = [r for r in range(n_reg) if math.isfinite(float(o2[t, r])) and math.isfinite(float(m2[t, r]))]
        tot_o = max(math.fsum(float(o2[t, r]) for r in take), 1.0)
        tot_m = math.fsum(float(m2[t, r]) for r in take)
        f = tot_o / tot_m if tot_m > 0 else 1.0
        shrink = set()
        if with_prior and tot_m > 0:
            tot_w = math.fsum(float(prior[r]) for r in take)
            if tot_w > 0:
                kappa = float(events) * len(take)
                den = float(hours) * tot_m + kappa
                for r in take:
                    m2[t, r] = tot_o * (float(hours) * float(m2[t, r]) + kappa * float(prior[r]) / tot_w) / den
                shrink = set(take)
        for r in range(n_reg):
            if r not in shrink:
                m2[t, r] = float(m2[t, r]) * f

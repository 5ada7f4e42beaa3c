"""Detector 6: prospective space-time scan statistic (Kulldorff), expectation-based Poisson.

For each count indicator the catalog marks ``cluster_scan``, every cycle:

* candidate zones are groups of adjacent neighbourhoods: for each centre, the centre
  plus, one at a time, the adjacent region nearest to the centre (up to ``scan_max_zone``
  regions; :func:`build_zones`); time windows are the last 1 .. ``scan_windows`` cycles
  ending now (prospective: only clusters still going on);
* for a zone Z and window W, with ``c`` the observed and ``m`` the expected count (the
  seasonal baseline) summed over Z x W, the log-likelihood ratio of "rate raised in Z x W"
  against "rate as expected" is ``LLR = c log(c / m) - (c - m)`` when ``c > m``, else 0
  (Neill's expectation-based Poisson scan);
* the most likely cluster (max LLR) and up to :data:`MAX_CLUSTERS` - 1 secondary clusters
  not overlapping it are tested by Monte Carlo: ``R`` replicas draw every cell's count from
  Poisson(expected) and record their max LLR; ``p = (1 + #{replica max >= LLR}) / (R + 1)``
  (secondaries use the same null distribution: conservative, as in SaTScan). A replica
  stops scanning once its max passes the largest observed LLR (it is then counted for all
  clusters): the p-values are exactly those of the full scan.
* regions of a cluster with ``p <= scan_alpha`` score ``1 - p`` (detector code 6) where
  that beats their other detectors. With 999 replicas the smallest p is 0.001, i.e. a
  score of :data:`engine.levels.CRITICAL`.

Replicas use a splitmix64 generator seeded from (seed, indicator, cycle number), so a
cycle's p-values do not depend on threads, on batch replay or on the other indicators.
Counts with a cell mean above 50 are drawn from the normal approximation.

>>> import numpy as np
>>> indptr = np.array([0, 1, 3, 4]); indices = np.array([1, 0, 2, 1])   # a path 0 - 1 - 2
>>> build_zones(indptr, indices, np.array([0.0, 1.0, 2.0]), np.zeros(3), 2).tolist()
[[0, 1], [1, 0], [2, 1]]
>>> round(llr(12.0, 4.0), 4)
5.1833
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.config import njit

__all__ = ["MAX_CLUSTERS", "build_zones", "llr", "scan_indicator", "scan_run_kernel", "scan_update_kernel"]

#: clusters reported per indicator and cycle (the most likely and non-overlapping secondaries)
MAX_CLUSTERS = 3
#: fields of one reported cluster in the ``found`` array
FOUND_FIELDS = ("llr", "p", "centre", "size", "window")
_CLOGC = 4096
CODE_CLUSTER = 6


def build_zones(indptr, indices, x, y, max_zone: int) -> np.ndarray:
    """Candidate zones: for each centre, itself then the nearest adjacent regions, grown one at a time.

    Returns an int32 array (n_reg, max_zone); ``-1`` pads zones of regions whose connected
    neighbourhood is smaller than ``max_zone``.
    """
    n = len(indptr) - 1
    zones = np.full((n, max_zone), -1, dtype=np.int32)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    for c in range(n):
        members = [c]
        inside = {c}
        frontier = set(int(j) for j in indices[indptr[c]:indptr[c + 1]]) - inside
        while len(members) < max_zone and frontier:
            nxt = min(frontier, key=lambda j: ((x[j] - x[c]) ** 2 + (y[j] - y[c]) ** 2, j))
            members.append(nxt)
            inside.add(nxt)
            frontier.discard(nxt)
            frontier |= set(int(j) for j in indices[indptr[nxt]:indptr[nxt + 1]]) - inside
        zones[c, :len(members)] = members
    return zones


@njit
def llr(c, m):
    """Expectation-based Poisson log-likelihood ratio of ``c`` observed against ``m`` expected."""
    if c <= m or m <= 0.0:
        return 0.0
    return c * math.log(c / m) - (c - m)


@njit
def _mix(z):  # pragma: no cover - compiled
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit
def _next(state):  # pragma: no cover - compiled
    state = state + np.uint64(0x9E3779B97F4A7C15)
    return state, _mix(state)


@njit
def _uniform(state):  # pragma: no cover - compiled
    state, z = _next(state)
    return state, ((z >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)


@njit
def _poisson(state, m, em):  # pragma: no cover - compiled
    # inverse transform (em = exp(-m)); normal approximation above m = 50
    if m <= 0.0:
        return state, 0.0
    if m > 50.0:
        state, u1 = _uniform(state)
        state, u2 = _uniform(state)
        g = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        v = math.floor(m + math.sqrt(m) * g + 0.5)
        return state, (v if v > 0.0 else 0.0)
    state, u = _uniform(state)
    k = 0.0
    p = em
    f = p
    while u > f and k < 1000.0:
        k += 1.0
        p *= m / k
        f += p
    return state, k


@njit
def _xlogx(c, table):  # pragma: no cover - compiled
    ic = int(c)
    if ic < table.shape[0]:
        return table[ic]
    return c * math.log(c)


@njit
def scan_indicator(obs, exp, pos, fill, zones, replicas, seed, alpha, score, det, found, table):  # pragma: no cover
    """Scan one indicator at one cycle.

    ``obs``/``exp`` (W, n_reg): ring buffers of observed / expected counts (0 where unknown),
    slot ``pos - 1`` the newest, ``fill`` slots valid; ``zones`` (n_reg, K); ``seed`` uint64
    (already mixed with indicator and cycle). Writes ``found`` (MAX_CLUSTERS, 5) and raises
    ``score`` / ``det`` (this indicator's rows) for significant clusters.
    """
    W = obs.shape[0]
    n_reg, K = zones.shape
    for q in range(found.shape[0]):
        for f in range(found.shape[1]):
            found[q, f] = math.nan
    if fill <= 0:
        return
    Cw = np.zeros((fill, n_reg))
    Mw = np.zeros((fill, n_reg))
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            Cw[w, r] = obs[slot, r] + (Cw[w - 1, r] if w > 0 else 0.0)
            Mw[w, r] = exp[slot, r] + (Mw[w - 1, r] if w > 0 else 0.0)
    # expected sums and their logs per (zone, size, window): the same for every replica
    Mz = np.zeros((n_reg, K, fill))
    LMz = np.zeros((n_reg, K, fill))
    Lobs = np.zeros((n_reg, K, fill))
    nsize = np.zeros(n_reg, dtype=np.int64)
    for zc in range(n_reg):
        csum = np.zeros(fill)
        msum = np.zeros(fill)
        for s in range(K):
            r = zones[zc, s]
            if r < 0:
                break
            nsize[zc] = s + 1
            for w in range(fill):
                csum[w] += Cw[w, r]
                msum[w] += Mw[w, r]
                Mz[zc, s, w] = msum[w]
                LMz[zc, s, w] = math.log(msum[w]) if msum[w] > 0.0 else 0.0
                Lobs[zc, s, w] = llr(csum[w], msum[w])
    # most likely cluster and non-overlapping secondaries
    taken = np.zeros(n_reg, dtype=np.bool_)
    nfound = 0
    for q in range(found.shape[0]):
        best = 0.0
        bz = -1
        bs = -1
        bw = -1
        for zc in range(n_reg):
            for s in range(nsize[zc]):
                clash = False
                for j in range(s + 1):
                    if taken[zones[zc, j]]:
                        clash = True
                        break
                if clash:
                    break
                for w in range(fill):
                    v = Lobs[zc, s, w]
                    if v > best:
                        best = v
                        bz = zc
                        bs = s
                        bw = w
        if bz < 0:
            break
        found[q, 0] = best
        found[q, 2] = bz
        found[q, 3] = bs + 1
        found[q, 4] = bw + 1
        for j in range(bs + 1):
            taken[zones[bz, j]] = True
        nfound += 1
    if nfound == 0:
        return
    top = found[0, 0]
    exceed = np.zeros(nfound, dtype=np.int64)
    em = np.empty((fill, n_reg))
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            em[w, r] = math.exp(-exp[slot, r])
    Cr = np.zeros((fill, n_reg))
    csum = np.zeros(fill)
    state = seed
    for _ in range(replicas):
        for w in range(fill):
            slot = (pos - 1 - w) % W
            for r in range(n_reg):
                state, v = _poisson(state, np.float64(exp[slot, r]), em[w, r])
                Cr[w, r] = v + (Cr[w - 1, r] if w > 0 else 0.0)
        rmax = 0.0
        for zc in range(n_reg):
            for w in range(fill):
                csum[w] = 0.0
            for s in range(nsize[zc]):
                r = zones[zc, s]
                for w in range(fill):
                    c = csum[w] + Cr[w, r]
                    csum[w] = c
                    m = Mz[zc, s, w]
                    if c > m and m > 0.0:
                        v = _xlogx(c, table) - c * LMz[zc, s, w] - c + m
                        if v > rmax:
                            rmax = v
            if rmax >= top:
                break
        for q in range(nfound):
            if rmax >= found[q, 0]:
                exceed[q] += 1
    for q in range(nfound):
        p = (1.0 + exceed[q]) / (replicas + 1.0)
        found[q, 1] = p
        if p <= alpha:
            sc = 1.0 - p
            zc = int(found[q, 2])
            for j in range(int(found[q, 3])):
                r = zones[zc, j]
                if math.isnan(score[r]) or sc > score[r]:
                    score[r] = sc
                    det[r] = CODE_CLUSTER


@njit
def _push(x, mu, obs, exp, pos):  # pragma: no cover - compiled
    for r in range(x.shape[0]):
        if math.isnan(x[r]) or math.isnan(mu[r]):
            obs[pos, r] = 0.0
            exp[pos, r] = 0.0
        else:
            v = math.floor(x[r] + 0.5)
            obs[pos, r] = v if v > 0.0 else 0.0
            exp[pos, r] = mu[r]


@njit
def _seed(seed, ind, cycle):  # pragma: no cover - compiled
    s = _mix(np.uint64(seed) ^ np.uint64(0x5DEECE66D))
    s = _mix(s ^ (np.uint64(ind) * np.uint64(0x9E3779B97F4A7C15)))
    return _mix(s ^ np.uint64(cycle))


def clogc_table(n: int = _CLOGC) -> np.ndarray:
    """``c * log(c)`` for whole ``c`` below ``n`` (0 at 0): the replicas' LLRs without a log."""
    c = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    out[1:] = c[1:] * np.log(c[1:])
    return out


@njit(parallel=True)
def scan_update_kernel(V, scan_ind, scan_mu, obs, exp, ring, zones, replicas, seed, cycle, alpha,
                       score, det, found, table):  # pragma: no cover - compiled
    """One cycle for every scanned indicator (``prange`` over them; each owns its rows)."""
    W = obs.shape[1]
    pos = ring[0]
    fill = ring[1] + 1 if ring[1] < W else W
    for c in prange(scan_ind.shape[0]):
        i = scan_ind[c]
        _push(V[i], scan_mu[c], obs[c], exp[c], pos)
        scan_indicator(obs[c], exp[c], pos + 1, fill, zones, replicas, _seed(seed, i, cycle), alpha,
                       score[i], det[i], found[c], table)
    ring[0] = (pos + 1) % W
    ring[1] = fill


@njit(parallel=True)
def scan_run_kernel(V, scan_ind, scan_mu, obs, exp, ring, zones, replicas, seed, cycles, alpha,
                    score, det, found, table):  # pragma: no cover - compiled
    """Many cycles: ``V`` (n_t, n_ind, n_reg), ``scan_mu`` (n_t, n_scan, n_reg), ``cycles`` (n_t)."""
    W = obs.shape[1]
    n_t = V.shape[0]
    pos0 = ring[0]
    fill0 = ring[1]
    for c in prange(scan_ind.shape[0]):
        i = scan_ind[c]
        pos = pos0
        fill = fill0
        for t in range(n_t):
            fill = fill + 1 if fill < W else W
            _push(V[t, i], scan_mu[t, c], obs[c], exp[c], pos)
            scan_indicator(obs[c], exp[c], pos + 1, fill, zones, replicas, _seed(seed, i, cycles[t]), alpha,
                           score[t, i], det[t, i], found[t, c], table)
            pos = (pos + 1) % W
    fill = fill0
    pos = pos0
    for t in range(n_t):
        fill = fill + 1 if fill < W else W
        pos = (pos + 1) % W
    ring[0] = pos
    ring[1] = fill

"""Detector 6: prospective space-time scan statistic (Kulldorff), expectation-based Poisson.

For each count indicator the catalog marks ``cluster_scan``, every cycle:

* candidate zones are groups of adjacent neighbourhoods: for each centre, the centre
  plus, one at a time, the adjacent region nearest to the centre (up to ``scan_max_zone``
  regions; :func:`build_zones`); time windows end now (prospective: only clusters still going
  on) and are made of the ring's *disjoint* counts: an indicator that counts over ``stride``
  cycles (a ``count_1h`` at 15-minute cycles: 4) has disjoint counts in the slots ``stride``
  apart, and the windows are the last 1, 2, 3, 4, 6, 8, 12, 16, ... of them up to all the ring
  holds (:func:`_window_ends`; a cell is the sum of the counts between two window ends,
  :func:`_cells`). ``stride`` 1 (the default) scans consecutive slots: right for counts over one
  cycle; for a ``count_1h`` at 15-minute cycles the windows then overlap, an event is counted up
  to 4 times, and the Poisson null of the replicas is wrong (measured: 64-75 % of clean cycles
  at p <= 0.05; ``tests/test_detect_scan.py``);
* for a zone Z and window W, with ``c`` the observed and ``m`` the expected count (the
  seasonal baseline) summed over Z x W, the log-likelihood ratio of "rate raised in Z x W"
  against "rate as expected" is ``LLR = c log(c / m) - (c - m)`` when ``c > m``, else 0
  (Neill's expectation-based Poisson scan);
* the most likely cluster (max LLR) and up to :data:`MAX_CLUSTERS` - 1 secondary clusters
  not overlapping it are tested by Monte Carlo: replicas draw every cell's count from
  Poisson(expected) and record their max LLR (secondaries use the same null distribution:
  conservative, as in SaTScan). ``p = (1 + E) / (R + 1)`` with ``E`` = replicas whose max
  is >= the cluster's LLR, out of ``R`` -- except that a cluster's replicas stop once ``E``
  reaches ``h = floor(alpha R) + 1`` (Besag & Clifford 1991, sequential Monte Carlo), at
  replica ``k``, and then ``p = h / k``. Such a cluster has ``p > alpha`` either way, and a
  cluster with ``p <= alpha`` never stops: the decisions, and every p-value at or below
  ``alpha``, are those of the full ``R``-replica test (under the null ``P(p <= alpha) <=
  alpha``; ``tests/test_detect_scan.py`` checks it). The replicas of an indicator end when
  all its clusters have stopped.
* before any replica, a screen: ``pi``, the probability that a replica's max LLR reaches a
  cluster's, is at least that of the single-region zones alone, and regions are independent,
  so ``pi >= 1 - prod_r (1 - e_r)`` with ``e_r`` the probability that some window of region
  ``r`` reaches it (exact, a recursion over the windows: :func:`_exceed_lower_bound`). A
  cluster whose bound is at least ``pi0`` (:func:`screen_level`: the full test, ``E ~ Bin(R,
  pi)``, would call it significant with probability <= :data:`SCREEN_EPS` = 1e-6 for every
  ``pi >= pi0``; 0.089 at 999 replicas and alpha 0.05) gets no replicas and ``p = 1``. The
  screen only ever declares "not significant", so the test stays at level alpha (most bounds are
  decided without the recursion, by cheap bounds of it either way, :func:`_exceed_fast_bound`: the
  same decisions); its
  decisions differ from the full test's with probability <= 1e-6 per screened cluster (in
  practice far less: the bound of a screened cluster is mostly well above ``pi0``); the p-values of
  every other cluster are unchanged. The screen goes from the lowest LLR up (the bound falls as
  the LLR rises): the clusters still tested set ``T`` below. On the 60-day demo most clusters
  are chance counts over floored expectations (p ~ 0.2-1) that each cost 50-700 replicas before.
* the screen's mirror (``tail`` only, no normal-approximation cell): a cluster whose union bound
  ``U`` (below) gives ``R U <= SURE_EPS`` = 1e-6 needs no replicas of its own: they stop once the
  clusters below it have stopped, and its p is ``U`` -- what all ``R`` replicas give unless one
  of them reaches it (probability <= ``R U``). Series with a count expected in many cells draw
  every cell without a branch (:func:`_draw_dense`, the same draws).
* a replica needs its max LLR only where it reaches the lowest LLR still tested, ``T``:
  whole counts are drawn by table lookup (``F[k] = P(X <= k)`` per cell, the draw is
  ``#{k: u > F[k]}``; the uniforms are ``q / 2**53`` for whole ``q``, so the replicas compare
  ``q`` with ``floor(F[k] * 2**53)`` and count only the cells past ``F[0]``, a few % of the
  cells of low-count series: :func:`_draw_sparse`, the same draws). The LLR is subadditive
  over regions (``LLR(zone) <= sum of its regions' LLRs``, each region's cell being its count
  and expectation over the window), so a zone-window can reach ``T`` only where its cells' LLRs
  sum to ``T`` (less a margin above the formulas' rounding, :func:`_zone_margin`), and then one
  of them reaches ``T / K``: the replica computes the LLR of each cell above its expectation,
  and for each such "hot" cell sums the LLRs of the regions sharing a zone with it over its
  window; only where that reaches ``T`` are the zones through it summed, and only the zones
  whose sum reaches ``T`` evaluated (on the demo's near misses: ~0.1-1 zone-window a replica,
  against ~250-560 with a count threshold per cell for ``T / K``). The replica max is exact
  wherever it is >= ``T``: same p-values as
  scanning everything. Observed and replica LLRs use one formula, so a replica equal to
  the observed counts counts as an exceedance.
* tail p-values (``tail=True``, for disjoint cells only): a cluster that no replica reached has
  only ``p <= 1 / (R + 1)`` from the Monte Carlo. Its p is then ``min(1 / (R + 1), U)`` with ``U``
  the union bound over the zone-windows, ``sum P(C_zw >= c_zw)`` (Poisson tails of the counts that
  reach its LLR; each term at most ``exp(-LLR)``, Chernoff), an upper bound of ``P(max >= LLR)``
  under the null at any level: ``P(p <= u) <= u`` still holds for every ``u`` (below ``1 / (R +
  1)`` only ``U`` can make ``p <= u``; above it, as the Monte Carlo). Without it the smallest p
  is 0.001, which no family-wise correction over a city's series lets through (the alert
  manager needs ~4e-8 at 300 neighbourhoods). The exact tails are summed only where the
  Chernoff sum ``N exp(-LLR)`` is already below ``1 / (R + 1)`` (a few ms a cluster at 64 hours).
* regions of a cluster with ``p <= scan_alpha`` score ``1 - p`` (detector code 6) where
  that beats their other detectors. With 999 replicas the smallest p is 0.001, i.e. a
  score of :data:`engine.levels.CRITICAL`.

* cadence (``every`` of :func:`scan_run_kernel`; ``Detectors.scan_every``, by default the counts'
  ``stride``): an indicator that counts over ``stride`` cycles is scanned once per ``stride``
  cycles, at the cycle numbers ``k`` with ``k % stride == 0`` -- those that close its grid of
  disjoint counts (a ``count_1h`` at 15-minute cycles: on the hour, the 07:00-08:00 count at
  08:00) -- instead of every cycle over a grid shifted by one cycle each time (4 scans of
  nearly the same data an hour). The other cycles push their counts into the rings and hold the
  last scan's result: its clusters are reported again and raise their regions' scores on that
  cycle's rows (:func:`_hold_cycle`). A scanning cycle's result is the every-cycle scan's, bit
  for bit; a cluster is seen up to ``stride - 1`` cycles later.

Replicas use a splitmix64 generator seeded from (seed, indicator, cycle number), so a
cycle's p-values do not depend on threads, on batch replay, on the order of the indicators
or on the other indicators. The uniform of a cell is addressed by its number in the stream
(counter-based), in the order of :func:`_poisson` (windows, then regions). Counts with a
cell mean above 50 are drawn from the normal approximation. The kernels find every
indicator's clusters first, then run the Monte Carlo over the indicators ranked by observed
LLR (the expensive, significant ones spread over the threads).

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
from llvmlite import ir as llvm_ir
from numba import prange
from numba.core import types as nb_types
from numba.extending import intrinsic

from engine.config import njit

__all__ = ["MAX_CLUSTERS", "build_zones", "llr", "scan_indicator", "scan_run_kernel", "scan_update_kernel",
           "screen_level", "sequential_h"]

#: clusters reported per indicator and cycle (the most likely and non-overlapping secondaries)
MAX_CLUSTERS = 3
#: fields of one reported cluster in the ``found`` array
FOUND_FIELDS = ("llr", "p", "centre", "size", "window")
_CLOGC = 4096
_GAMMA = 0x9E3779B97F4A7C15
#: cell means above this are drawn from the normal approximation
NORMAL_ABOVE = 50.0
#: Poisson cumulative sums tabulated per cell (beyond: the recurrence continues)
POISSON_TABLE = 24
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
def _uniform_at(seed, n):  # pragma: no cover - compiled
    """The ``n``-th (0-based) uniform of the stream that :func:`_uniform` walks from ``seed``."""
    z = _mix(seed + (n + np.uint64(1)) * np.uint64(_GAMMA))
    return ((z >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)


@njit
def _poisson(state, m, em):  # pragma: no cover - compiled
    """One Poisson(m) draw by inversion (``em = exp(-m)``); normal approximation above m = 50.

    The slow form of the replicas' draws (:func:`_draw_replica`, which reads the same
    cumulative sums from a table and gives the same draw for the same uniforms).
    """
    if m <= 0.0:
        return state, 0.0
    if m > NORMAL_ABOVE:
        state, u1 = _uniform(state)
        state, u2 = _uniform(state)
        return state, _normal_count(m, u1, u2)
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
def _normal_count(m, u1, u2):  # pragma: no cover - compiled
    g = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    v = math.floor(m + math.sqrt(m) * g + 0.5)
    return v if v > 0.0 else 0.0


@njit
def _cell_tables(exp, pos, fill, mcell, off, F, plast):  # pragma: no cover - compiled
    """Replica tables of one indicator and cycle; cells ``i = r * fill + w`` (region r, window
    slot w, 0 the newest).

    ``mcell[i]`` the cell's expectation; ``off[i]`` the number of its (first) uniform within a
    replica, in the draw order of :func:`_poisson` (w, then r; none where m <= 0, two above
    :data:`NORMAL_ABOVE`); ``F[k, i] = P(X <= k)`` by the additions of :func:`_poisson` (1
    where the table is not used), ``plast[i]`` the last pmf term. The table length ``J`` is
    what the largest mean needs for ``P(X >= J) <= 1e-4`` (at most ``F.shape[0]``); draws
    beyond it continue the recurrence. Returns (uniforms a replica consumes, J).
    """
    W, n_reg = exp.shape
    Jmax = F.shape[0]
    mmax = 0.0
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            m = np.float64(exp[slot, r])
            if m <= NORMAL_ABOVE and m > mmax:
                mmax = m
    J = 1
    p = math.exp(-mmax)
    f = p
    while J < Jmax and f < 1.0 - 1e-4:
        p *= mmax / J
        f += p
        J += 1
    U = 0
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            i = r * fill + w
            m = np.float64(exp[slot, r])
            mcell[i] = m
            off[i] = U
            if m <= 0.0 or m > NORMAL_ABOVE:
                for k in range(J):
                    F[k, i] = 1.0
                plast[i] = 0.0
                U += 0 if m <= 0.0 else 2
                continue
            U += 1
            p = math.exp(-m)
            f = p
            F[0, i] = f
            for k in range(1, J):
                p *= m / k
                f += p
                F[k, i] = f
            plast[i] = p
    return U, J


@njit
def _draw_tail(u, m, k, p, f):  # pragma: no cover - compiled
    """Continue :func:`_poisson`'s search from ``k`` (pmf term ``p``, cdf ``f``): rare draws past the table."""
    kk = float(k)
    while u > f and kk < 1000.0:
        kk += 1.0
        p *= m / kk
        f += p
    return kk


@njit
def _draw_replica(seed, base, mcell, off, F, plast, J, special, u, k):  # pragma: no cover - compiled
    """One replica's counts of every cell into ``k`` (the draws of :func:`_poisson`, same uniforms).

    Vectorised: uniforms by counter, then ``k = #{j < J: u > F[j]}`` (F is non-decreasing, so
    this is the inverse CDF while ``u <= F[J - 1]``); the rest one by one.
    """
    n = u.shape[0]
    for i in range(n):
        u[i] = _uniform_at(seed, base + off[i])
    for i in range(n):
        k[i] = 0.0
    for j in range(J):
        Fj = F[j]
        for i in range(n):
            k[i] += 1.0 if u[i] > Fj[i] else 0.0
    fj = float(J)
    for i in range(n):
        if k[i] == fj:
            k[i] = _draw_tail(u[i], mcell[i], J - 1, plast[i], F[J - 1, i])
    for t in range(special.shape[0]):
        i = special[t]
        k[i] = _normal_count(mcell[i], u[i], _uniform_at(seed, base + off[i] + np.uint64(1)))


#: the uniforms are ``q * 2**-53`` for whole ``q`` in 1 .. 2**53 (``1 / 9007199254740993.0`` rounds
#: to ``2**-53``), so ``u > F`` exactly when ``q > floor(F * 2**53)``
_UNIT = 1.0 / 9007199254740993.0
_TWO53 = 9007199254740992.0


@njit
def _int_table(F, J, Q):  # pragma: no cover - compiled
    """``Q[j, i] = floor(F[j, i] * 2**53)``: ``u > F[j, i]`` as a whole-number comparison."""
    for j in range(J):
        for i in range(F.shape[1]):
            Q[j, i] = np.int64(math.floor(F[j, i] * _TWO53))


@njit
def _offset_keys(off, og):  # pragma: no cover - compiled
    """``og[i] = (off[i] + 1) * GAMMA`` (mod 2**64): a cell's part of its uniform's counter, once an
    indicator (:func:`_uniform_keys`)."""
    for i in range(off.shape[0]):
        og[i] = (off[i] + np.uint64(1)) * np.uint64(_GAMMA)


@njit(inline="always")
def _uniform_keys(seed, base, og, qv):  # pragma: no cover - compiled
    """The uniforms ``_uniform_at(seed, base + off[i])`` of a replica's cells as whole numbers
    ``q`` (``u = q * 2**-53``): ``seed + (base + off + 1) GAMMA = (seed + base GAMMA) + og`` mod
    2**64, so one addition a cell instead of an addition, a multiplication and an addition."""
    sb = seed + base * np.uint64(_GAMMA)
    for i in range(qv.shape[0]):
        z = _mix(sb + og[i])
        qv[i] = np.int64(z >> np.uint64(11)) + 1


@njit
def _draw_sparse(seed, base, mcell, off, og, F, Q, plast, J, special, qv, fl, k, nz):  # pragma: no cover - compiled
    """The draws of :func:`_draw_replica` (same uniforms, same counts), written where non-zero.

    The uniforms as whole numbers (``qv``, one vectorised pass: :func:`_uniform_keys`), the cells
    over their first table entry (a count above 0: a few % of the cells of low-count series) into
    ``nz``, and only their counts into ``k`` (which must be zero elsewhere: the caller clears what
    it read), followed by the normal-approximation cells (``special``). ``og``: the cells' keys
    (:func:`_offset_keys` of ``off``); ``fl``: uint8 scratch, a cell each. Returns the entries of
    ``nz`` (which needs room for every cell and the special ones).

    The cells over the first entry are flagged in a vectorised pass (``fl``), then listed without a
    branch (each cell's number written, the count of entries raised by its flag): a branch a cell
    missed at each of the few % (a draw of 999 replicas of 2,700 cells: 4.7-5.2 -> 4.2-4.3 ms).
    """
    n = qv.shape[0]
    _uniform_keys(seed, base, og, qv)
    Q0 = Q[0]
    for i in range(n):
        fl[i] = 1 if qv[i] > Q0[i] else 0
    nnz = 0
    for i in range(n):
        nz[nnz] = i
        nnz += fl[i]
    for t in range(nnz):
        i = nz[t]
        q = qv[i]
        j = 1
        while j < J and q > Q[j, i]:
            j += 1
        if j == J:
            k[i] = _draw_tail(q * _UNIT, mcell[i], J - 1, plast[i], F[J - 1, i])
        else:
            k[i] = float(j)
    for t in range(special.shape[0]):
        i = special[t]
        k[i] = _normal_count(mcell[i], qv[i] * _UNIT, _uniform_at(seed, base + off[i] + np.uint64(1)))
        nz[nnz] = i
        nnz += 1
    return nnz


@njit
def _draw_dense(seed, base, mcell, off, og, F, Q, plast, J, special, qv, k):  # pragma: no cover - compiled
    """The draws of :func:`_draw_sparse` (same uniforms, same counts) into every cell of ``k``, for
    series with a count in many cells: ``k = #{j < J: q > Q[j]}`` by whole-number comparisons over
    all cells (vectorised, no branch a cell), then the draws past the table and the
    normal-approximation cells one by one, as :func:`_draw_replica`."""
    n = qv.shape[0]
    _uniform_keys(seed, base, og, qv)
    for i in range(n):
        k[i] = 0.0
    for j in range(J):
        Qj = Q[j]
        for i in range(n):
            k[i] += 1.0 if qv[i] > Qj[i] else 0.0
    fj = float(J)
    for i in range(n):
        if k[i] == fj:
            k[i] = _draw_tail(qv[i] * _UNIT, mcell[i], J - 1, plast[i], F[J - 1, i])
    for t in range(special.shape[0]):
        i = special[t]
        k[i] = _normal_count(mcell[i], qv[i] * _UNIT, _uniform_at(seed, base + off[i] + np.uint64(1)))


#: an indicator's replicas draw every cell (:func:`_draw_dense`) where the cells expected to get a
#: count are at least this share of all (else only those, :func:`_draw_sparse`)
DENSE_SHARE = 0.2
#: a cluster gets no replicas where ``R U`` (``U`` its union bound, :func:`_tail_bound`) is at most
#: this: the chance that any replica reaches it (the mirror of the screen, ``SCREEN_EPS``)
SURE_EPS = 1e-6


@njit
def _xlogx(c, table):  # pragma: no cover - compiled
    ic = int(c)
    if ic < table.shape[0] and ic == c:
        return table[ic]
    return c * math.log(c)


@njit
def _llr_t(c, m, lm, table):  # pragma: no cover - compiled
    """:func:`llr` written as the replicas compute it (``lm = log m``; one formula for the
    observed and the replica statistics, so equal counts give equal LLRs: ties count)."""
    if c > m and m > 0.0:
        return _xlogx(c, table) - c * lm - c + m
    return 0.0


@njit
def _threshold(m, lm, T, table):  # pragma: no cover - compiled
    """Smallest whole count ``c`` with ``_llr_t(c, m) >= T'`` (``T' = T`` less a margin far above
    the formula's rounding): counts below it cannot reach ``T``. ``inf`` where ``m <= 0``.

    Starts from ``m + sqrt(2 m T')`` (``c log(c/m) - (c - m) <= (c - m)^2 / (2 m)``, so no
    smaller count can reach ``T'``), then gallops and bisects on the (increasing) formula.
    """
    if m <= 0.0:
        return math.inf
    t = T - (1e-7 + 1e-12 * (abs(T) + m * (1.0 + abs(lm))))
    if t <= 0.0:
        return m
    lo = math.ceil(m + math.sqrt(2.0 * m * t))
    if _llr_t(lo, m, lm, table) >= t:
        return lo
    step = 1.0
    hi = lo + step
    while _llr_t(hi, m, lm, table) < t:
        lo = hi
        step *= 2.0
        hi = lo + step
    while hi - lo > 1.0:
        mid = math.floor(0.5 * (lo + hi))
        if _llr_t(mid, m, lm, table) < t:
            lo = mid
        else:
            hi = mid
    return hi


@njit
def _zone_margin(Mcell, K, cmax):  # pragma: no cover - compiled
    """How far below the true sum of its regions' LLRs a replica's zone-window LLR can be computed.

    The LLR is the perspective of a convex function, ``llr(c, m) = max_{q >= 1} (c log q - (q - 1) m)``,
    hence subadditive over the regions of a zone: ``LLR(zone) <= sum of its regions' LLRs`` (each
    region's cell: its count and expectation over the window). The replicas evaluate a zone-window
    only where the cells' LLRs (:func:`_llr_t`; ``inf`` for a count ``>= cmax``, past the table of
    ``c log c``) sum to at least ``T`` less this margin. Each formula's rounding is a few ulps of
    its terms ``c log c``, ``c log m``, ``c``, ``m``; with ``K`` regions of expectations (``Mcell``:
    every cell of the indicator) at most ``Mmax`` and at least ``Mmin > 0``, counts at most ``Cb = K
    max(cmax, Mmax)`` (a cell's count is below ``cmax`` or its LLR is ``inf``, or it is at most its
    expectation) and ``|log m| <= lam``, the sum of the ``K + 1`` errors is below ``8 eps (Cb (log Cb
    + lam + 1) + K Mmax)``; the margin is 100 times that plus 1e-6.
    """
    mmax = 0.0
    mmin = math.inf
    for i in range(Mcell.shape[0]):
        m = Mcell[i]
        if m > 0.0:
            if m > mmax:
                mmax = m
            if m < mmin:
                mmin = m
    if mmax == 0.0:
        return 1e-6
    cb = K * (cmax if cmax > mmax else mmax)
    lam = max(abs(math.log(mmin)), abs(math.log(K * mmax))) + 1.0
    return 1e-6 + 1e-13 * (cb * (math.log(cb) + lam + 2.0) + K * mmax)


def sequential_h(replicas: int, alpha: float) -> int:
    """Exceedances after which a cluster's replicas stop (Besag & Clifford): ``floor(alpha R) + 1``.

    A cluster stopped there has ``p = h / k >= h / R > alpha`` and would also have had
    ``(1 + E) / (R + 1) > alpha`` with all ``R`` replicas (``E >= h``): the decisions are those
    of the full test, and a cluster that is significant never stops (same p-value).
    """
    return int(math.floor(alpha * replicas)) + 1


@njit
def _seq_h(replicas, alpha):  # pragma: no cover - compiled
    return int(math.floor(alpha * replicas)) + 1


#: a cluster is screened out (declared not significant without Monte Carlo) only where the full
#: test would call it significant with at most this probability
SCREEN_EPS = 1e-6
#: counts tracked per region by the screen's bound (larger thresholds are left out of it)
SCREEN_CAP = 64
#: the screen decides every cluster of an indicator from the top's bound alone where that bound's
#: ``log(1 - bound)`` is this much (relative) below ``log(1 - pi0)`` (:func:`_screen`): far above the
#: bound's rounding (~1e-13 relative), far below the bounds' spread (so it almost never costs a bound)
SCREEN_TOP_MARGIN = 1e-6


@njit
def _binom_cdf(k, n, p):  # pragma: no cover - compiled
    """``P(Bin(n, p) <= k)``, summed in logs (no underflow of the first terms)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lt = n * math.log1p(-p)
    lr = math.log(p) - math.log1p(-p)
    total = 0.0
    for j in range(k + 1):
        total += math.exp(lt)
        lt += math.log((n - j) / (j + 1.0)) + lr
    return total if total < 1.0 else 1.0


@njit
def _screen_level(replicas, alpha):  # pragma: no cover - compiled
    """Smallest exceedance probability ``pi0`` at which the full ``R``-replica test is significant
    (``E <= h - 1`` exceedances, ``E ~ Bin(R, pi)``) with probability at most :data:`SCREEN_EPS`
    for every ``pi >= pi0``. ``inf`` where no replica count can stop a cluster (``h > R``)."""
    h = _seq_h(replicas, alpha)
    if h > replicas:
        return math.inf
    lo = alpha
    hi = 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _binom_cdf(h - 1, replicas, mid) <= SCREEN_EPS:
            hi = mid
        else:
            lo = mid
    return hi


def screen_level(replicas: int, alpha: float) -> float:
    """Python face of :func:`_screen_level` (999 replicas, alpha 0.05: ~0.092)."""
    return float(_screen_level(int(replicas), float(alpha)))


@njit
def _count_for(M, L, table):  # pragma: no cover - compiled
    """Smallest whole count whose LLR against ``M`` (the replicas' formula) is ``>= L``; inf if none."""
    if M <= 0.0 or not (L > 0.0):
        return math.inf
    lm = math.log(M)
    c = math.ceil(_threshold(M, lm, L, table))
    if c < 1.0:
        c = 1.0
    for _ in range(SCREEN_CAP):         # the threshold is within a count of it but where rounding
        if _llr_t(c, M, lm, table) >= L:   # swamps the formula (huge M): then left out (inf)
            return c
        c += 1.0
    return math.inf


#: where the replicas' formula is increasing in the count by far more than its rounding (docs/detect.md,
#: "Scan in the demo, 2026-11-29 (ninth session)"): expectations up to this, thresholds ``T'`` from the next,
#: counts below the last -- there :func:`_count_from` searches from a guess
_FAST_M = 1000.0
_FAST_T = 0.5
_FAST_C = 100000.0
#: counts :func:`_count_from` walks before it calls :func:`_count_for` (whose search is logarithmic)
_FAST_STEPS = 6


@njit
def _count_from(M, L, table, g):  # pragma: no cover - compiled
    """:func:`_count_for` ``(M, L)``, searched one count at a time from ``g`` (a neighbouring window's
    count: the thresholds of a region's or a zone's windows differ by a count or two).

    :func:`_count_for` finds ``r0``, the first count ``>= lo = ceil(M + sqrt(2 M T'))`` with
    ``f(r0) >= T'`` (``f`` :func:`_llr_t`, ``T'`` :func:`_threshold`'s ``T`` less its margin), by
    galloping and bisecting, then the first count ``>= r0`` with ``f >= L``. Where ``f`` is
    increasing over the counts that is the first count ``>= lo`` with ``f >= L``, which is what this
    returns. It is, by far, where ``0 < M <= _FAST_M``, ``T' >= _FAST_T`` and the count is below
    ``_FAST_C``: from ``lo`` up, ``f(c + 1) - f(c) >= log((c + 1) / M) - 1 / (2 c) >= 0.031`` while
    each value's rounding is below ``4e-16 (c log c + c |log M| + c + M) < 4e-8``; elsewhere it
    calls :func:`_count_for`, as it does after :data:`_FAST_STEPS` counts walked (a guess far off).
    ``g``: a whole count, NaN or inf (NaN, inf or below ``lo``: from ``lo``).
    """
    if not (M > 0.0 and M <= _FAST_M and L > 0.0):
        return _count_for(M, L, table)
    return _count_from_l(M, math.log(M), L, table, g)


@njit
def _count_from_l(M, lm, L, table, g):  # pragma: no cover - compiled
    """:func:`_count_from` with ``lm = log(M)`` given (the same value: the union bound takes it once a
    zone-window for the count and the Poisson tail, :func:`_tail_bound`)."""
    if not (M > 0.0 and M <= _FAST_M and L > 0.0):
        return _count_for(M, L, table)
    t = L - (1e-7 + 1e-12 * (abs(L) + M * (1.0 + abs(lm))))      # as _threshold's
    if not (t >= _FAST_T):
        return _count_for(M, L, table)
    steps = 0                   # a guess far off (another region's expectation): the gallop instead
    if g < _FAST_C and _llr_t(g, M, lm, table) >= L:
        # no count below lo reaches L (there the formula is below T'), so a count whose formula reaches L
        # is >= lo, and so is every count the walk down passes: lo is not needed (nor its square root)
        c = g
        while _llr_t(c - 1.0, M, lm, table) >= L:
            c -= 1.0
            steps += 1
            if steps > _FAST_STEPS:
                return _count_for(M, L, table)
        return c
    lo = math.ceil(M + math.sqrt(2.0 * M * t))
    c = g + 1.0 if g + 1.0 > lo else lo     # (g below L's count: from the next one)
    if not (c < _FAST_C):
        return _count_for(M, L, table)
    if _llr_t(c, M, lm, table) >= L:
        return c
    c += 1.0
    while _llr_t(c, M, lm, table) < L:
        c += 1.0
        steps += 1
        if steps > _FAST_STEPS or not (c < _FAST_C):
            return _count_for(M, L, table)
    return c


@njit
def _exceed_lower_bound(mcell, Mcell, fill, single, L, table, thr, dist, new, pmf, cum, stop, lmc, emc, tlast,
                        known, elast, llast):  # pragma: no cover - compiled
    """A lower bound of the probability that a replica's max LLR is ``>= L``.

    The replica max is at least that of the single-region zones; the regions' counts are
    independent, so ``P(max >= L) >= 1 - prod_r (1 - e_r)``, ``e_r`` the probability that some
    window of region ``r`` (cumulative counts of its cells, Poisson with the cells' means) has
    ``LLR >= L``, computed exactly by a recursion over the windows on the count (up to
    :data:`SCREEN_CAP`; beyond it, and for regions with a cell drawn from the normal
    approximation, the events are left out: the bound only gets lower). ``single[r]``: region
    ``r`` is a zone of its own. ``pmf``, ``cum``: scratch of ``SCREEN_CAP + 1`` entries (each
    window's Poisson terms ``P(X = k)`` and sums ``P(X < k)``, by the recurrence's own products
    and additions, once a window instead of once a count).

    ``stop``: the regions' loop ends as soon as the bound is surely ``>= stop`` (its log below
    ``log1p(-stop)`` by a margin far above rounding: the log only falls as regions are added, so
    the full bound would be ``>= stop`` too); the value returned is then ``>= stop`` but not the
    full bound. ``inf``: no early end. The screen only compares the bound with its level.

    ``lmc``, ``emc``, ``tlast`` (a cell each), ``known``, ``elast``, ``llast`` (a region each;
    ``known`` False at first): what the bounds of one screen share, written for a region the first
    time a bound computes it: its cells' ``log(Mcell)`` (for :func:`_count_from_l`) and
    ``exp(-mcell)`` (the first Poisson term); each cell's threshold at the last ``L`` computed (the
    next bound's is at least that for a higher ``L``: where the search starts; any start gives the
    same count); the region's last ``e_r`` and ``log1p(-e_r)``. ``e_r`` is a function of the cell
    means and the thresholds only (not of ``L`` otherwise): a region whose thresholds are those of
    its last computation (the thresholds are whole counts, so a slightly higher ``L`` mostly keeps
    them) takes its last ``e_r``. The same values as computing everything anew each bound, so the
    bound does not depend on what was computed before.
    """
    n_reg = single.shape[0]
    log_none = 0.0
    log_stop = -math.inf
    if stop < 1.0:
        log_stop = math.log1p(-stop)
        log_stop -= 1e-9 * abs(log_stop) + 1e-300
    prev = -1                      # regions with the same cell means as the last one bounded share its e_r
    prev_e = 0.0
    prev_l = 0.0                   # (and its log1p(-e_r))
    g0 = 1.0                       # the last region's first threshold (where the next one's search starts)
    for r in range(n_reg):
        if not single[r]:
            continue
        if prev >= 0:
            same = True
            for w in range(fill):
                if mcell[r * fill + w] != mcell[prev * fill + w]:
                    same = False
                    break
            if same:
                if prev_e > 0.0:
                    log_none += prev_l
                    if log_none < log_stop:
                        return -math.expm1(log_none)
                continue
        prev = r
        prev_e = 0.0
        skip = False
        for w in range(fill):
            if mcell[r * fill + w] > NORMAL_ABOVE:
                skip = True
        if skip:
            continue
        again = known[r]
        if not again:
            known[r] = True
            for w in range(fill):
                i = r * fill + w
                M = Mcell[i]
                lmc[i] = math.log(M) if M > 0.0 else 0.0     # (_count_from_l does not read it where M <= 0)
                m = mcell[i]
                emc[i] = math.exp(-m) if m > 0.0 else 1.0
                tlast[i] = math.nan
        cmax = 0.0
        for w in range(fill):
            i = r * fill + w
            g = thr[w - 1] if w > 0 else g0
            if tlast[i] > g:                # (NaN: none yet)
                g = tlast[i]
            thr[w] = _count_from_l(Mcell[i], lmc[i], L, table, g)
            if thr[w] != tlast[i]:          # (NaN, the first time: not equal)
                again = False
            tlast[i] = thr[w]
            if w == 0:
                g0 = thr[0]
            if thr[w] < math.inf and thr[w] > cmax:
                cmax = thr[w]
        if cmax == 0.0:
            continue
        if again:                           # the thresholds of its last computation: its last e_r
            exc = elast[r]
            if exc >= 1.0:
                return 1.0
            prev_e = exc
            prev_l = llast[r]
            log_none += prev_l
            if log_none < log_stop:
                return -math.expm1(log_none)
            continue
        cap = int(cmax) if cmax < SCREEN_CAP else SCREEN_CAP
        for c in range(cap):
            dist[c] = 0.0
        dist[0] = 1.0
        exc = 0.0
        for w in range(fill):
            m = mcell[r * fill + w]
            # the count's terms once a window (the same products and sums for every c)
            pk = emc[r * fill + w]
            cdf = 0.0
            for k in range(cap + 1):
                pmf[k] = pk
                cum[k] = cdf
                cdf += pk
                pk *= m / (k + 1)
            tw = thr[w]
            for c in range(cap):
                new[c] = 0.0
            for c in range(cap):
                d = dist[c]
                if d == 0.0:
                    continue
                k = 0
                while True:
                    t = c + k
                    if t >= tw:
                        tail = 1.0 - cum[k]
                        exc += d * (tail if tail > 0.0 else 0.0)
                        break
                    if t >= cap or (m <= 0.0 and k > 0):
                        break
                    new[t] += d * pmf[k]
                    k += 1
            dist, new = new, dist
        elast[r] = exc
        if exc >= 1.0:
            return 1.0
        prev_e = exc
        prev_l = math.log1p(-exc)
        llast[r] = prev_l
        log_none += prev_l
        if log_none < log_stop:
            return -math.expm1(log_none)
    return -math.expm1(log_none)


#: the screen's fast bounds (:func:`_exceed_fast_bound`) decide that the exact bound is below a level
#: ``x`` only where the upper one is below ``x (1 - SCREEN_FAST_REL) - SCREEN_FAST_ABS``, at or above it only
#: where the lower one is at or above ``x (1 + SCREEN_FAST_REL) + SCREEN_FAST_ABS``: far above the bounds'
#: rounding (below ~1e-9 absolute)
SCREEN_FAST_REL = 1e-6
SCREEN_FAST_ABS = 1e-8
#: ``1 / c!`` for ``c`` up to :data:`SCREEN_CAP` (the fast bounds' Poisson terms)
_INV_FACT = np.array([1.0 / math.gamma(c + 1.0) for c in range(SCREEN_CAP + 1)])


@njit
def _breakpoint(c, Lp, up):  # pragma: no cover - compiled
    """A value ``B >= M*`` (``up``) or ``B <= M*`` (not ``up``), ``M*`` the root in ``(0, c)`` of ``c log(c / M)
    - c + M = Lp`` (``Lp > 0``; the true LLR falls as ``M`` rises on ``(0, c)``): with ``up``, every expectation
    whose whole count ``c`` has a true LLR of at least ``Lp`` is at most ``B``; without, every expectation at
    most ``B`` gives ``c`` a true LLR above ``Lp``. Newton in ``u = log M`` from ``log c - 1 - Lp / c`` (left of
    the root: the function is convex and falls there, so the steps rise to the root and stay below it),
    then moved by ``1e-9`` (relative) and checked: the function's computed value at ``B`` must be beyond
    ``1e-12`` of its terms (its rounding: ~1e-16 of them) on the side asked for. Where not shown: ``c``
    (``up``) or 0."""
    cc = float(c)
    lc = math.log(cc)
    u = lc - 1.0 - Lp / cc
    for _ in range(60):
        eu = math.exp(u)
        d = cc - eu
        if not (d > 0.0):
            return cc if up else 0.0
        step = (cc * (lc - u) - cc + eu - Lp) / d
        u += step
        if not (step > 1e-13 * (1.0 + abs(u))):
            break
    sgn = 1.0 if up else -1.0
    for k in range(4):
        u += sgn * 1e-9 * (1.0 + abs(u)) * (1.0 + 1000.0 * k)
        eu = math.exp(u)
        if up and not (eu < cc):
            return cc
        h = cc * (lc - u) - cc + eu - Lp
        tol = 1e-12 * (cc * (abs(lc) + abs(u) + 1.0) + eu + abs(Lp))
        if (h < -tol) if up else (h > tol):
            return eu
    return cc if up else 0.0


@njit
def _exceed_fast_bound(mcell, Mcell, fill, single, L, B, stop, up):  # pragma: no cover - compiled
    """An upper (``up``) or a lower bound of :func:`_exceed_lower_bound`'s exact value (its value without an
    early end, in exact arithmetic), cheap (no thresholds searched, no recursion: ~1/4-1/5 of its cost a
    region), or a value ``>= stop`` once the bound passes ``stop``: the screen's quick decisions.

    Each region the exact bound counts (a zone of its own, no cell above :data:`NORMAL_ABOVE`) has ``e_r
    = P(some window w reaches its threshold)`` (``S_w``, the window's count, Poisson with mean ``Mcell``;
    thresholds at most :data:`SCREEN_CAP`: a path is left out only past every threshold it could reach).
    The windows' counts ``t_w``: the first ``c`` with ``M_w <= B[c]``, ``B[c]`` :func:`_breakpoint` at ``Lp =
    L - d`` (``up``: ``B`` at or above the root) or ``L + d`` (lower: at or below it), ``d = 1e-6 + 1e-9
    |L|``. A threshold ``c`` (the smallest count with ``_llr_t(c, M) >= L``; the formula is increasing in
    the count by far more than its rounding, ~1e-10 for counts and expectations up to ``SCREEN_CAP``) has a
    true LLR ``>= L - d``, so ``M <= B_up[c]`` and ``t_w`` is at most the threshold; ``M <= B_low[c]`` gives
    ``c`` a true LLR above ``L + d``, so the threshold is at most ``c``: ``t_w`` at least the threshold. The
    counts only rise over the windows, so within a run of equal ``t_w`` only its last window matters:
    upper: ``e_r <= sum`` over the runs' last windows of ``P(S_w >= t_w) <= P(S_w = t_w) (t_w + 1) / (t_w + 1
    - M_w)`` (the terms fall by ``M / (k + 1)``; ``t > M``), windows with ``t_w`` past ``SCREEN_CAP`` left out
    (their thresholds too); lower: ``e_r >= max P(S_w = t_w)`` over them. Returned: upper ``sum_r min(1,
    u_r)`` (at least ``1 - prod (1 - u_r)``), lower ``1 - prod (1 - l_r)`` in logs. ``inf`` (upper) or 0
    (lower) where a cell mean is negative or NaN. ``B`` (``SCREEN_CAP + 1``): scratch."""
    n_reg = single.shape[0]
    d = 1e-6 + 1e-9 * abs(L)
    Lp = L - d if up else L + d
    nb = B.shape[0]
    nk = 1                                  # B[1 .. nk - 1] computed
    total = 0.0
    log_none = 0.0
    log_stop = math.log1p(-stop) if stop < 1.0 else -math.inf
    for r in range(n_reg):
        if not single[r]:
            continue
        skip = False
        for w in range(fill):
            m = mcell[r * fill + w]
            if not (m >= 0.0):
                return math.inf if up else 0.0      # (no Poisson: not bounded here)
            if m > NORMAL_ABOVE:
                skip = True
        if skip:
            continue
        t = 1
        ur = 0.0
        tp = 0
        Mp = 0.0
        for w in range(fill + 1):
            if w < fill:
                M = Mcell[r * fill + w]
                if M <= 0.0:
                    continue
                while t < nb:
                    if t >= nk:
                        B[t] = _breakpoint(t, Lp, up)
                        nk = t + 1
                    if B[t] >= M:
                        break
                    t += 1
            if tp > 0 and (w == fill or t != tp):       # a run ends: its last window's term
                pt = math.exp(-Mp) * _INV_FACT[tp]
                for _ in range(tp):
                    pt *= Mp
                if up:
                    ur += pt * (tp + 1.0) / (tp + 1.0 - Mp)
                elif pt > ur:
                    ur = pt
            if w == fill or t >= nb:
                break
            tp = t
            Mp = M
        if up:
            total += ur if ur < 1.0 else 1.0
            if total >= stop:
                return total
        elif ur > 0.0:
            log_none += math.log1p(-ur)
            if log_none < log_stop:
                return -math.expm1(log_none)
    return total if up else -math.expm1(log_none)


@njit(inline="always")
def _window_sums(obs, exp, pos, fill, Cw, Mw):  # pragma: no cover - compiled
    """Each region's observed (``Cw``) and expected (``Mw``) counts over the last ``w + 1`` cycles
    of the ring (``pos`` the next slot), ``w < fill``: (fill, n_reg) running sums."""
    W = obs.shape[0]
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(obs.shape[1]):
            Cw[w, r] = obs[slot, r] + (Cw[w - 1, r] if w > 0 else 0.0)
            Mw[w, r] = exp[slot, r] + (Mw[w - 1, r] if w > 0 else 0.0)


@njit
def _zone_sums(exp, pos, fill, zones, Mz, nsize, Mw):  # pragma: no cover - compiled
    """Expected counts per (zone, size, window): ``Mz`` (n_reg, K, fill); ``nsize`` regions per
    zone; ``Mw[w, r]`` expected count of region r over window w. (The Monte Carlo and the union
    bound need only the expectations; :func:`_observe` sums the observed counts as it searches.)"""
    n_reg, K = zones.shape
    Cw = np.empty((fill, n_reg))        # scratch: _window_sums' observed half, unused here
    _window_sums(exp, exp, pos, fill, Cw, Mw)
    msum = np.zeros(fill)
    for zc in range(n_reg):
        nsize[zc] = 0
        for w in range(fill):
            msum[w] = 0.0
        for s in range(K):
            r = zones[zc, s]
            if r < 0:
                break
            nsize[zc] = s + 1
            for w in range(fill):
                msum[w] += Mw[w, r]
                Mz[zc, s, w] = msum[w]


@njit(inline="always")
def _prefix_best(csum, msum, lo, fill, table):  # pragma: no cover - compiled
    """A zone prefix's largest LLR over the windows ``lo .. fill - 1`` of its sums (``csum``, ``msum``) and its
    first window of it (``0.0, -1``: none above 0), :func:`_llr_t`'s values.

    Over the windows of one prefix the count only rises and the expectation too: a window with the same count
    as the last window evaluated (``cref``, ``mref``) over more expectation has a lower LLR, by at least
    ``(c / m - 1)(m - mref)``; where that is far above both values' rounding (each within ``1e-15 (|c log c| +
    c |log m| + c + m)``, below ``1e-15 (3 c^2 + 5 c |log mref| + 4 c)`` for the two: ``mref < m < c``), its
    computed LLR is below the last one's, so not above ``bv``: not computed."""
    bv = 0.0
    bw = -1
    cref = -1.0
    mref = 0.0
    gref = 0.0
    for w in range(lo, fill):
        c = csum[w]
        m = msum[w]
        if c > m and m > 0.0:
            if c == cref and m > mref and (c - m) * (m - mref) > m * (gref + 2e-12 * c * c):
                continue                # the same count over more expectation: below the last LLR
            lm = math.log(m)
            v = _llr_t(c, m, lm, table)
            cref = c
            mref = m
            gref = 1e-12 * (2.0 * c * abs(lm) + 2.0 * c)
            if v > bv:
                bv = v
                bw = w
    return bv, bw


@njit(inline="always")
def _zone_prefixes(zc, s_lim, zones, Cw, Mw, fw, fill, csum, msum, Lzs, Wzs, table):  # pragma: no cover - compiled
    """``Lzs[zc, s]``, ``Wzs[zc, s]`` for the prefixes ``1 .. s_lim - 1`` of zone ``zc`` (:func:`_prefix_best`;
    prefix 0 is its first region's, set by the caller). A prefix's sums are kept only over the windows where
    it has a count (the windows are nested, so from the first window with a count of any of its members on:
    ``lo``); a window entering that range gets its sums so far in the members' order, the running sums'
    additions. Elsewhere its count is zero, so no LLR (the old sums were 0 + 0 + ... there)."""
    lo = fill
    for s in range(s_lim):
        r = zones[zc, s]
        if fw[r] < lo:
            for w in range(fw[r], lo):          # their sums over the members so far, in order
                c = 0.0
                m = 0.0
                for j in range(s):
                    c += Cw[w, zones[zc, j]]
                    m += Mw[w, zones[zc, j]]
                csum[w] = c
                msum[w] = m
            lo = fw[r]
        for w in range(lo, fill):
            csum[w] += Cw[w, r]
            msum[w] += Mw[w, r]
        if s > 0:
            bv, bw = _prefix_best(csum, msum, lo, fill, table)
            Lzs[zc, s] = bv
            Wzs[zc, s] = bw


@njit(inline="always")
def _select(zones, nsize, taken, Lzs, Wzs, zmax):  # pragma: no cover - compiled
    """The first (zone, size) in the scan's order of the largest ``Lzs`` above 0 among the prefixes that
    overlap no taken region: (value, zone, size - 1, window); zone -1 where none. ``zmax[zc]``: at least every
    ``Lzs[zc, s]`` (a zone whose ``zmax`` is not above the best so far cannot replace it: not walked)."""
    best = 0.0
    bz = -1
    bs = -1
    bw = -1
    for zc in range(zones.shape[0]):
        if zmax[zc] <= best:
            continue
        for s in range(nsize[zc]):
            # a prefix overlapping a cluster taken ends the zone's prefixes; the members before s
            # were checked with the shorter prefixes, so only the new one is
            if taken[zones[zc, s]]:
                break
            v = Lzs[zc, s]
            if v > best:
                best = v
                bz = zc
                bs = s
                bw = Wzs[zc, s]
    return best, bz, bs, bw


@njit
def _prefix_margin(cz, mz, K):  # pragma: no cover - compiled
    """How far above the sum of its regions' own largest LLRs a zone prefix's computed LLR can be (counts at
    most ``cz``, expectations at most ``mz``, ``K`` regions at most; :func:`_observe`). Multiply the sum by
    :func:`_prefix_factor` and add this."""
    lc = math.log(cz) if cz > 1.0 else 0.0
    lmz = math.log(mz) if mz > 1.0 else 0.0
    return 1e-9 + 1e-13 * (K + 2) * (cz * (2.0 * lc + lmz + 3.0) + mz + 1.0)


@njit
def _prefix_factor(K):  # pragma: no cover - compiled
    """The sum of a prefix's regions' LLRs raised by this factor (its rounding, and the formulas' error
    relative to the LLR): :func:`_prefix_margin`."""
    return 1.0 + 2e-13 * (K + 2)


@njit
def _observe(obs, exp, pos, fill, zones, found, table):  # pragma: no cover - compiled
    """Most likely cluster and non-overlapping secondaries into ``found`` (p left NaN).

    Returns the number found (0 when no zone has more than expected).

    Each zone prefix's largest LLR over the windows (``Lzs``) and its first window (``Wzs``): the search
    takes the first (zone, size, window) of the largest LLR, which is the first (zone, size) of the largest
    ``Lzs`` and its ``Wzs``. The sums are :func:`_window_sums`' in zone order, the LLRs :func:`_llr_t`'s,
    with the shortcuts of :func:`_zone_prefixes` and :func:`_prefix_best` (docs/detect.md, "Scan in the
    demo, 2026-11-30 (tenth session)").

    Lazily (docs/detect.md, "Scan: the observed clusters' lazy search, 2026-11-30 (seventeenth session)"):
    every region's own LLR first (``Lr``, its largest over the windows: each zone's prefix 0). The LLR is
    subadditive over regions (:func:`_zone_margin`; counts and expectations >= 0, ``llr(0, 0) = 0``), so a
    longer prefix's LLR at a window is at most the sum of its regions' there, at most the sum of their
    ``Lr`` (``inf`` for a region with a count over no expectation) -- computed, within ``margin`` and a
    relative ``1e-12``-ish of it (below). Before each cluster's search only the zones with a prefix still
    open (no region taken) whose bound reaches the best value already known among the open prefixes (the
    threshold ``thr``, raised as zones are computed; ties go to the scan's order, so "reaches", not
    "passes"), and with a count, get their prefixes computed; every other prefix's value is below the
    cluster's (or 0) and is left 0. A zone computed once is computed up to its first taken region: the
    prefixes any later search opens.

    The margin: with every cell of the ``fill`` newest slots finite and >= 0 (else ``inf``: every zone with a
    count is computed), a prefix of at most ``K`` regions has counts ``c <= Cz = K cmax`` and expectations
    ``m <= Mz = K mmax`` (``cmax``, ``mmax``: the largest region totals over all windows). Each formula is
    within a few ulps of ``|c log c| + c |log m| + c + m`` (:func:`_llr_t`), the prefix's summed counts and
    expectations within ``K`` ulps (the LLR moves by at most ``c (1 + |log c| + |log m|)`` times that); for
    ``m >= 1``, ``c |log m| <= c log Mz``, below, ``c |log m| = LLR + c - m - c log c``, with ``LLR`` at most
    the bound ``ub``. So the ``K + 1`` formulas and the sums are within ``(K + 2) 8 eps (Cz (2 log+ Cz +
    log+ Mz + 3) + Mz + 1 + ub)``: the margin is ``1e-13 (K + 2)`` (~60 times that) of the first terms plus
    1e-9, and ``ub`` is raised by ``2e-13 (K + 2)`` of itself (its own sum's rounding included).
    """
    n_reg, K = zones.shape
    for q in range(found.shape[0]):
        for f in range(found.shape[1]):
            found[q, f] = math.nan
    if fill <= 0:
        return 0
    # most indicators count rare events: with no count in the windows no zone can exceed its expectation
    W = obs.shape[0]
    any_count = False
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            if obs[slot, r] > 0.0:
                any_count = True
                break
        if any_count:
            break
    if not any_count:
        return 0
    Cw = np.empty((fill, n_reg))                # _window_sums, and the cells' check for the margin
    Mw = np.empty((fill, n_reg))
    good = 0
    for w in range(fill):
        slot = (pos - 1 - w) % W
        for r in range(n_reg):
            o = obs[slot, r]
            e = exp[slot, r]
            Cw[w, r] = o + (Cw[w - 1, r] if w > 0 else 0.0)
            Mw[w, r] = e + (Mw[w - 1, r] if w > 0 else 0.0)
            good += (o >= 0.0) & (o <= 1e300) & (e >= 0.0) & (e <= 1e300)
    fw = np.full(n_reg, fill, dtype=np.int64)   # each region's first window with a (non-zero) count; fill: none
    for w in range(fill - 1, -1, -1):
        for r in range(n_reg):
            fw[r] = w if Cw[w, r] != 0.0 else fw[r]
    margin = math.inf
    if good == fill * n_reg:
        cmax = 0.0
        mmax = 0.0
        for r in range(n_reg):
            cmax = max(cmax, Cw[fill - 1, r])
            mmax = max(mmax, Mw[fill - 1, r])
        margin = _prefix_margin(K * cmax, K * mmax, K)
    uf = _prefix_factor(K)
    csum = np.empty(fill)
    msum = np.empty(fill)
    Lr = np.zeros(n_reg)                        # each region's own largest LLR and its window
    Wr = np.full(n_reg, -1, dtype=np.int64)
    Lb = np.zeros(n_reg)                        # ... as a term of the bounds: inf for a count over no expectation
    for r in range(n_reg):
        lo = fw[r]
        if lo >= fill:
            continue
        for w in range(lo, fill):
            csum[w] = 0.0 + Cw[w, r]
            msum[w] = 0.0 + Mw[w, r]
        bv, bw = _prefix_best(csum, msum, lo, fill, table)
        Lr[r] = bv
        Wr[r] = bw
        Lb[r] = bv if Mw[lo, r] > 0.0 else math.inf
    Lzs = np.zeros((n_reg, K))
    Wzs = np.full((n_reg, K), -1, dtype=np.int64)
    nsize = np.zeros(n_reg, dtype=np.int64)
    zmax = np.zeros(n_reg)                      # the largest Lzs of each zone so far
    ubz = np.full(n_reg, -math.inf)             # each zone's bound over all its prefixes; -inf: no count in it
    for zc in range(n_reg):
        ub = 0.0
        has = False
        for s in range(K):
            r = zones[zc, s]
            if r < 0:
                break
            nsize[zc] = s + 1
            ub += Lb[r]
            has |= fw[r] < fill
        if nsize[zc] > 0:
            r = zones[zc, 0]
            Lzs[zc, 0] = Lr[r]
            Wzs[zc, 0] = Wr[r]
            zmax[zc] = Lr[r]
        if has and nsize[zc] > 1:
            ubz[zc] = ub * uf + margin
    done = np.zeros(n_reg, dtype=np.bool_)      # zones whose prefixes (up to the first taken region) are computed
    taken = np.zeros(n_reg, dtype=np.bool_)
    nfound = 0
    for q in range(found.shape[0]):
        best, bz, bs, bw = _select(zones, nsize, taken, Lzs, Wzs, zmax)
        thr = best
        more = False
        for zc in range(n_reg):
            if done[zc] or ubz[zc] < thr:
                continue                        # below thr over all its prefixes (or no count)
            ub = 0.0
            has = False
            s_lim = 0
            for s in range(nsize[zc]):
                r = zones[zc, s]
                if taken[r]:
                    break
                ub += Lb[r]
                has |= fw[r] < fill
                s_lim = s + 1
            if s_lim < 2 or not has or ub * uf + margin < thr:
                continue                        # every open prefix's LLR is below thr (or 0)
            _zone_prefixes(zc, s_lim, zones, Cw, Mw, fw, fill, csum, msum, Lzs, Wzs, table)
            done[zc] = True
            more = True
            for s in range(1, s_lim):
                v = Lzs[zc, s]
                thr = max(thr, v)
                zmax[zc] = max(zmax[zc], v)
        if more:
            best, bz, bs, bw = _select(zones, nsize, taken, Lzs, Wzs, zmax)
        if bz < 0:
            break
        found[q, 0] = best
        found[q, 2] = bz
        found[q, 3] = bs + 1
        found[q, 4] = bw + 1
        for j in range(bs + 1):
            taken[zones[bz, j]] = True
        nfound += 1
    return nfound


@njit
def _screen(exp, pos, fill, zones, pi0, found, nfound, table):  # pragma: no cover - compiled
    """The screen of :func:`_monte_carlo`: from the lowest LLR up, a cluster whose exceedance
    probability has a lower bound (:func:`_exceed_lower_bound`) of at least
    :func:`_screen_level` gets no replicas and ``p = 1`` (field 1: not significant; 1 keeps
    every reported p a valid, conservative p-value). Returns the number of clusters left to
    test (the first ones, highest LLRs).

    A cluster whose LLR ``L`` has ``2 ncell exp(-L) + 1e-9 < pi0`` ends the screen without its bound:
    the bound cannot reach ``pi0`` there (Chernoff: a single-region window's count reaching ``L``
    has probability at most ``exp(-L)`` -- its threshold's LLR, by the replicas' formula, is
    ``>= L``, the true one within 1e-12 of it -- and the bound is at most the sum over the
    ``ncell`` windows, its rounding far below 1e-9), so the loop would have ended there too.
    The clusters strong enough for it (``L`` above ~13 at 2,700 cells and ``pi0`` 0.014) cost the
    screen's largest bounds (~0.5-1.3 ms each on the demo's parts). ``pi0``: :func:`_screen_level`
    of the replicas and alpha (the caller's, once for all its indicators).

    The top first: with more than one cluster, the highest LLR's bound is computed first, to the level
    ``pi0m`` (``log(1 - pi0m) = (1 +`` :data:`SCREEN_TOP_MARGIN` ``) log(1 - pi0)``). Where it reaches
    ``pi0m`` every cluster is screened, as the loop would have: a lower LLR has thresholds at most the
    top's (the first count whose LLR reaches it), so each region's exact ``e_r`` -- the probability of
    a path reaching some window's threshold before passing the cap -- is at least the top's, and the
    exact bound too; the computed values are within ~1e-13 (relative, of ``log(1 - bound)``) of the exact
    ones, far inside the margin, so each lower cluster's computed bound reaches ``pi0``. Where it is below
    ``pi0`` (the whole bound: no early end) it is the value the loop would compute for the top (bounds do
    not depend on what was computed before), so the loop stops below the top. Between the two: the
    loop as before. The same decisions, the same ``found``: most indicators of the demo have three
    clusters, all screened, now at one bound.

    Each bound, the top's and the loop's, is first bracketed by :func:`_exceed_fast_bound` (no thresholds
    searched, no recursion): a lower one at or above the level (``pi0m`` for the top, ``pi0``; with
    :data:`SCREEN_FAST_REL` / :data:`SCREEN_FAST_ABS` above it) decides "at or above" and an upper one
    below ``pi0`` (the same margins below it) decides "below", as the exact bound would (its computed
    value is within ~1e-9 of the exact one; docs/detect.md, "Scan: the screen's fast bounds",
    sixteenth session); only between the two is :func:`_exceed_lower_bound` computed."""
    if not (pi0 < 1.0):
        return nfound
    n_reg = zones.shape[0]
    W = exp.shape[0]
    ncell = n_reg * fill
    pi0m = -math.expm1(math.log1p(-pi0) * (1.0 + SCREEN_TOP_MARGIN))     # the top's level: pi0 and a margin
    if nfound == 0 or 2.0 * ncell * math.exp(-found[nfound - 1, 0]) + 1e-9 < pi0:
        return nfound
    mcell = np.empty(ncell)
    Mcell = np.empty(ncell)
    slots = np.empty(fill, dtype=np.int64)      # the windows' ring slots (a modulo each, not one a cell)
    for w in range(fill):
        slots[w] = (pos - 1 - w) % W
    for r in range(n_reg):
        acc = 0.0
        for w in range(fill):
            m = np.float64(exp[slots[w], r])
            acc = m if w == 0 else acc + m          # as _zone_sums' Mw
            mcell[r * fill + w] = m
            Mcell[r * fill + w] = acc
    single = np.zeros(n_reg, dtype=np.bool_)
    for zc in range(n_reg):
        if zones[zc, 0] >= 0:
            single[zones[zc, 0]] = True
    thr = np.empty(fill)
    dist = np.empty(SCREEN_CAP)
    new = np.empty(SCREEN_CAP)
    pmf = np.empty(SCREEN_CAP + 1)
    cum = np.empty(SCREEN_CAP + 1)
    lmc = np.empty(ncell)                       # shared by the bounds (_exceed_lower_bound)
    emc = np.empty(ncell)
    tlast = np.empty(ncell)
    known = np.zeros(n_reg, dtype=np.bool_)
    elast = np.empty(n_reg)
    llast = np.empty(n_reg)
    # the top first (highest LLR): where its bound reaches pi0 with a margin, every lower cluster's does
    # (below), so one bound decides them all; where it is below pi0 the loop from the lowest up ends at
    # the top, whose bound is then not computed again
    last = 0                                    # clusters the loop leaves untested (0 or the top)
    B = np.empty(SCREEN_CAP + 1)                # the fast bounds' breakpoints (_exceed_fast_bound)
    below = pi0 * (1.0 - SCREEN_FAST_REL) - SCREEN_FAST_ABS
    above = pi0 * (1.0 + SCREEN_FAST_REL) + SCREEN_FAST_ABS
    above_m = pi0m * (1.0 + SCREEN_FAST_REL) + SCREEN_FAST_ABS
    if nfound > 1 and not (2.0 * ncell * math.exp(-found[0, 0]) + 1e-9 < pi0):
        if _exceed_fast_bound(mcell, Mcell, fill, single, found[0, 0], B, above_m, False) >= above_m:
            for q in range(nfound):             # the top's bound is at or above pi0m (not computed)
                found[q, 1] = 1.0
            return 0
        if _exceed_fast_bound(mcell, Mcell, fill, single, found[0, 0], B, below, True) < below:
            last = 1                            # the top's bound is below pi0 (not computed)
        else:
            lb_t = _exceed_lower_bound(mcell, Mcell, fill, single, found[0, 0], table, thr, dist, new,
                                       pmf, cum, pi0m, lmc, emc, tlast, known, elast, llast)
            if lb_t >= pi0m:
                for q in range(nfound):
                    found[q, 1] = 1.0
                return 0
            if lb_t < pi0:
                last = 1
    active = nfound
    while active > last:
        if 2.0 * ncell * math.exp(-found[active - 1, 0]) + 1e-9 < pi0:
            break
        if _exceed_fast_bound(mcell, Mcell, fill, single, found[active - 1, 0], B, above, False) >= above:
            found[active - 1, 1] = 1.0          # its bound is at or above pi0 (not computed)
            active -= 1
            continue
        if _exceed_fast_bound(mcell, Mcell, fill, single, found[active - 1, 0], B, below, True) < below:
            break                               # its bound is below pi0 (not computed)
        lb_p = _exceed_lower_bound(mcell, Mcell, fill, single, found[active - 1, 0], table, thr, dist, new,
                                   pmf, cum, pi0, lmc, emc, tlast, known, elast, llast)
        if lb_p < pi0:
            break
        found[active - 1, 1] = 1.0
        active -= 1
    return active


@njit
def _zone_max(Cr, Mz, zones, zc, n, w, fill, rmax, table):  # pragma: no cover - compiled
    """``rmax`` raised to the LLRs of zone ``zc``'s prefixes (``n`` regions) over window ``w``: the
    replica's counts cumulated over the windows in ``Cr`` (cell ``r * fill + w``), the zone's
    expectations in ``Mz`` (:func:`_zone_sums`)."""
    c = 0.0
    for s in range(n):
        c += Cr[zones[zc, s] * fill + w]
        m = Mz[zc, s, w]
        if c > m and m > 0.0:
            v = _llr_t(c, m, math.log(m), table)
            if v > rmax:
                rmax = v
    return rmax


@intrinsic
def _take(typingctx, counter):
    """``counter[0]``, raised by one in the same atomic step (LLVM ``atomicrmw add``): the shares of
    :func:`_monte_carlo` running at once each take the next indicator of the testing order when they
    are done with one, so no two take the same and none is left out."""
    if not (isinstance(counter, nb_types.Array) and counter.dtype == nb_types.int64):
        return None

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", arr.data, llvm_ir.Constant(llvm_ir.IntType(64), 1), "seq_cst")
    return nb_types.int64(counter), codegen


@njit
def _monte_carlo(exp_c, ncs, nf, seeds, order, take, zones, replicas, alpha, found, table, stats, tail,
                 scan_ind, score, det):  # pragma: no cover
    """p-values of the clusters of indicators ``ind = order[j]``, ``j`` taken one at a time from the
    counter ``take`` (int64 (1,), 0 for the first: :func:`_take`; every share of a cycle running at
    once takes from the same counter, the next ``j`` each time it is done with one, until
    ``order`` is exhausted) (field 1 of ``found[ind]``, ``nf[ind]`` clusters; cells ``exp_c[ind]``,
    ``ncs[ind]`` of them; replicas seeded by ``seeds[ind]``), see the module docstring; then the
    regions of the significant ones raise ``score[scan_ind[ind]]`` / ``det[scan_ind[ind]]``
    (:func:`_mark`). Each indicator's result depends on its own inputs only, so not on which share
    took it.

    One function for a whole share of a cycle's indicators (not one call an indicator): each
    compiled caller level re-optimises and re-emits everything it calls, and this is the scan's
    largest code (docs/detect.md, "Scan late in the run, 2026-11-29 (seventh session)").
    ``stats`` (3,) int64 gets += replicas run, hot cells (LLR >= T / K), zone-windows evaluated. ``tail``: a
    cluster no replica reached gets ``min(1 / (R + 1), U)``, ``U`` the union bound of
    :func:`_tail_bound` (valid where the cells are independent Poisson counts under the null)."""
    n_reg, K = zones.shape
    pi0 = _screen_level(replicas, alpha)      # the screen's level (the same for every indicator)
    while True:
        j = _take(take)
        if j >= order.shape[0]:
            break
        ind = order[j]
        nfound = nf[ind]
        if nfound == 0:
            continue
        exp = exp_c[ind]
        pos = ncs[ind]
        fill = pos
        seed = seeds[ind]
        found_c = found[ind]
        # the screen: clusters (from the lowest LLR up) whose exceedance probability is surely high
        # enough that the full test would not call them significant get no replicas
        tested = _screen(exp, pos, fill, zones, pi0, found_c, nfound, table)
        active = tested
        if active == 0:
            continue
        Mz = np.empty((n_reg, K, fill))
        Mw = np.empty((fill, n_reg))
        nsize = np.zeros(n_reg, dtype=np.int64)
        _zone_sums(exp, pos, fill, zones, Mz, nsize, Mw)
        # the mirror of the screen: from the highest LLR down, clusters whose union bound U says that
        # no replica is likely to reach them (R U <= SURE_EPS) stop the replicas once all the others
        # have stopped; U is what their p would be then (no replica reaching them, the tail below).
        # Only for the Poisson draws (no normal-approximation cell): U bounds the replicas' max there
        sure = 0
        ub = np.full(nfound, -1.0)              # exact union bounds computed here, for the p-values
        if tail:
            nsp = 0
            for w in range(fill):
                for r in range(n_reg):
                    if np.float64(exp[w, r]) > NORMAL_ABOVE:
                        nsp += 1
            while nsp == 0 and sure < active:
                L = found_c[sure, 0]
                # the exact sum (a few ms) only where the Chernoff sum is already small
                if _tail_bound(Mz, nsize, fill, L, np.bool_(True), table) * replicas > 1000.0 * SURE_EPS:
                    break
                ub[sure] = _tail_bound(Mz, nsize, fill, L, np.bool_(False), table)
                if ub[sure] * replicas > SURE_EPS:
                    break
                sure += 1
        top = found_c[0, 0]
        h = _seq_h(replicas, alpha)
        exceed = np.zeros(nfound, dtype=np.int64)
        stopped = np.zeros(nfound, dtype=np.int64)
        ncell = n_reg * fill
        mcell = np.empty(ncell)
        off = np.empty(ncell, dtype=np.uint64)
        F = np.empty((POISSON_TABLE, ncell))
        plast = np.empty(ncell)
        U, J = _cell_tables(exp, pos, fill, mcell, off, F, plast)
        nspecial = 0
        for i in range(ncell):
            if mcell[i] > NORMAL_ABOVE:
                nspecial += 1
        special = np.empty(nspecial, dtype=np.int64)
        nspecial = 0
        for i in range(ncell):
            if mcell[i] > NORMAL_ABOVE:
                special[nspecial] = i
                nspecial += 1
        # many cells with a count: draw them all (no branch a cell) rather than find them
        expz = 0.0
        for i in range(ncell):
            expz += 1.0 - F[0, i]
        dense = expz >= DENSE_SHARE * ncell
        Mcell = np.empty(ncell)                 # expected count of region r over window w, i = r * fill + w
        for r in range(n_reg):
            for w in range(fill):
                Mcell[r * fill + w] = Mw[w, r]
        # zones through each region (CSR)
        mptr = np.zeros(n_reg + 1, dtype=np.int64)
        for zc in range(n_reg):
            for s in range(nsize[zc]):
                mptr[zones[zc, s] + 1] += 1
        for r in range(n_reg):
            mptr[r + 1] += mptr[r]
        mzone = np.empty(mptr[n_reg], dtype=np.int64)
        nxt = mptr[:n_reg].copy()
        for zc in range(n_reg):
            for s in range(nsize[zc]):
                r = zones[zc, s]
                mzone[nxt[r]] = zc
                nxt[r] += 1
        # regions that share a zone with each region (CSR, the region itself included)
        nptr = np.zeros(n_reg + 1, dtype=np.int64)
        nmark = np.full(n_reg, -1, dtype=np.int64)
        nreg = np.empty(mptr[n_reg] * K, dtype=np.int64)
        for r in range(n_reg):
            n_nb = nptr[r]
            for e in range(mptr[r], mptr[r + 1]):
                zc = mzone[e]
                for s in range(nsize[zc]):
                    j = zones[zc, s]
                    if nmark[j] != r:
                        nmark[j] = r
                        nreg[n_nb] = j
                        n_nb += 1
            nptr[r + 1] = n_nb
        T = found_c[active - 1, 0]
        # the candidate rule (_zone_margin): a zone-window is evaluated only where the LLRs of its
        # regions' cells sum to at least thr = T less the margin; every one where thr <= 0
        lMc = np.empty(ncell)                   # log of the cells' expectations (0 where none)
        for i in range(ncell):
            lMc[i] = math.log(Mcell[i]) if Mcell[i] > 0.0 else 0.0
        margin = _zone_margin(Mcell, K, float(table.shape[0]))
        thr = T - margin - 1e-12 * T
        Q = np.empty((J, ncell), dtype=np.int64)
        _int_table(F, J, Q)
        qv = np.empty(ncell, dtype=np.int64)
        fl = np.empty(ncell, dtype=np.uint8)
        og = np.empty(ncell, dtype=np.uint64)
        _offset_keys(off, og)
        kc = np.zeros(ncell)                    # counts and cumulative counts: zero but in the regions drawn
        Cr = np.zeros(ncell)
        nz = np.empty(ncell + nspecial, dtype=np.int64)
        touched = np.empty(n_reg, dtype=np.int64)
        rmark = np.full(n_reg, -1, dtype=np.int64)
        Lc = np.zeros(ncell)                    # a replica's cells' LLRs (inf past the table of c log c): zero
        Lr = np.zeros(n_reg)                    # but in the regions drawn; and each region's largest (zero: none)
        rof = np.empty(ncell, dtype=np.int64)   # region of cell i (i // fill: a load, not a division per cell drawn)
        for i in range(ncell):
            rof[i] = i // fill
        # each touched region's first window with a drawn cell (sparse draws): its cells before it have no
        # count, so their cumulative counts and LLRs stay the zeros they hold (written from there on only)
        fwr = np.zeros(n_reg, dtype=np.int64)
        if dense:
            for r in range(n_reg):
                touched[r] = r
        for rep in range(replicas if active > sure else 0):
            base = np.uint64(rep) * np.uint64(U)
            if dense:
                _draw_dense(seed, base, mcell, off, og, F, Q, plast, J, special, qv, kc)
                ntouch = n_reg
            else:
                nnz = _draw_sparse(seed, base, mcell, off, og, F, Q, plast, J, special, qv, fl, kc, nz)
                ntouch = 0
                for t in range(nnz):
                    i = nz[t]
                    r = rof[i]
                    w = i - r * fill
                    if rmark[r] != rep:
                        rmark[r] = rep
                        touched[ntouch] = r
                        ntouch += 1
                        fwr[r] = w
                    elif w < fwr[r]:
                        fwr[r] = w
                if nspecial > 0:
                    touched[:ntouch].sort()
            # the cells (region x window: counts cumulated over the windows), their LLRs and each region's
            # largest (Lr: 0 where none is above 0)
            hot = (thr / K) * (1.0 - 1e-9)
            nhot = 0
            for t in range(ntouch):
                r = touched[t]
                acc = 0.0
                lmax = 0.0
                for w in range(fwr[r], fill):
                    i = r * fill + w
                    acc += kc[i]
                    Cr[i] = acc
                    if acc > Mcell[i]:
                        v = _llr_t(acc, Mcell[i], lMc[i], table) if acc < table.shape[0] else math.inf
                        Lc[i] = v
                        nhot += 1 if v >= hot else 0
                        lmax = v if v > lmax else lmax
                    else:
                        Lc[i] = 0.0
                Lr[r] = lmax
            stats[0] += 1
            stats[1] += nhot
            # the LLR is subadditive over regions: a zone-window reaches T only where its cells' LLRs sum
            # to thr or more, so where one of them is hot (>= thr / K) and the LLRs of the regions sharing
            # a zone with it sum to thr or more. A region's largest LLRs summed over the same regions in the
            # same order bound those sums at every window of it, as computed (a rounded sum does not fall
            # where a term rises), so a region whose bound is below thr has none to sum: the same cells,
            # the same sums, in the same order (touched regions, then windows) as summing at each hot cell
            rmax = 0.0
            if thr > 0.0:
                for t in range(ntouch):
                    r = touched[t]
                    if not (Lr[r] >= hot):
                        continue                # no hot cell
                    b = 0.0
                    for e in range(nptr[r], nptr[r + 1]):
                        b += Lr[nreg[e]]
                    if not (b >= thr):
                        continue
                    for w in range(fwr[r], fill):
                        if not (Lc[r * fill + w] >= hot):
                            continue            # (hot > 0 here: a hot cell is above its expectation)
                        b = 0.0
                        for e in range(nptr[r], nptr[r + 1]):
                            b += Lc[nreg[e] * fill + w]
                        if not (b >= thr):
                            continue
                        for e in range(mptr[r], mptr[r + 1]):
                            zc = mzone[e]
                            b = 0.0
                            for s in range(nsize[zc]):
                                b += Lc[zones[zc, s] * fill + w]
                            if b >= thr:
                                stats[2] += 1
                                rmax = _zone_max(Cr, Mz, zones, zc, nsize[zc], w, fill, rmax, table)
                        if rmax >= top:
                            break
                    if rmax >= top:
                        break
            else:
                for zc in range(n_reg):
                    for w in range(fill):
                        stats[2] += 1
                        rmax = _zone_max(Cr, Mz, zones, zc, nsize[zc], w, fill, rmax, table)
            if not dense:                       # (dense: every cell is written again)
                for t in range(ntouch):
                    r = touched[t]
                    Lr[r] = 0.0
                    for w in range(fwr[r], fill):
                        kc[r * fill + w] = 0.0
                        Cr[r * fill + w] = 0.0
                        Lc[r * fill + w] = 0.0
            for q in range(active):
                if rmax >= found_c[q, 0]:
                    exceed[q] += 1
            was = active
            while active > 0 and exceed[active - 1] >= h:
                stopped[active - 1] = rep + 1
                active -= 1
            if active <= sure:
                break
            if active != was:
                T = found_c[active - 1, 0]
                thr = T - margin - 1e-12 * T
        floor_p = 1.0 / (replicas + 1.0)
        for q in range(tested):
            if stopped[q] > 0:
                found_c[q, 1] = h / stopped[q]
            elif exceed[q] > 0 or not tail:
                found_c[q, 1] = (1.0 + exceed[q]) / (replicas + 1.0)
            else:
                # no replica reached it: the Monte Carlo only says p <= 1 / (R + 1); the union bound
                # over the zone-windows (valid at any level) says how far below
                found_c[q, 1] = floor_p
                # the flag as a bool value, not the literals True / False (each literal compiles its own version)
                if ub[q] >= 0.0 or _tail_bound(Mz, nsize, fill, found_c[q, 0], np.bool_(True), table) < floor_p:
                    u = ub[q] if ub[q] >= 0.0 else _tail_bound(Mz, nsize, fill, found_c[q, 0], np.bool_(False), table)
                    if u < floor_p:
                        found_c[q, 1] = u
        _mark(found_c, nfound, zones, alpha, score[scan_ind[ind]], det[scan_ind[ind]])


@njit
def _window_ends(n_cnt, ends):  # pragma: no cover - compiled
    """Window lengths (in counts, newest first) into ``ends``: 1, 2, 3, 4, 6, 8, 12, 16, 24, ...
    below ``n_cnt``, then ``n_cnt`` itself (the longest window is all the ring holds). Returns
    how many. ``ends`` needs :func:`n_windows` ``(n_cnt)`` entries."""
    nc = 0
    a = 1
    while a < n_cnt:
        ends[nc] = a
        nc += 1
        if a < 4:
            a += 1
        elif (a & (a - 1)) == 0:
            a += a // 2             # 4 -> 6, 8 -> 12, ...
        else:
            a = (a // 3) * 4        # 6 -> 8, 12 -> 16, ...
    if n_cnt >= 1:
        ends[nc] = n_cnt
        nc += 1
    return nc


def n_windows(n_cnt: int) -> int:
    """Windows the scan tries with ``n_cnt`` disjoint counts in its ring (``0`` for none).

    >>> [n_windows(k) for k in (1, 4, 5, 6, 16, 24, 64)]
    [1, 4, 5, 5, 8, 9, 12]
    """
    ends = np.zeros(max(int(n_cnt), 1) + 1, dtype=np.int64)
    return int(_window_ends(int(n_cnt), ends))


def window_lengths(n_cnt: int) -> list:
    """The window lengths (in counts) of :func:`n_windows`.

    >>> window_lengths(24)
    [1, 2, 3, 4, 6, 8, 12, 16, 24]
    """
    ends = np.zeros(max(int(n_cnt), 1) + 1, dtype=np.int64)
    return ends[:_window_ends(int(n_cnt), ends)].tolist()


@njit
def _cells(obs, exp, pos, fill, stride, ends, obs_c, exp_c):  # pragma: no cover - compiled
    """The scan's cells from a ring of counts: ``obs`` / ``exp`` (W, n_reg), slot ``pos - 1`` the
    newest, ``fill`` slots valid, one slot a cycle; the indicator counts over ``stride`` cycles
    (a ``count_1h`` at 15-minute cycles: 4), so the slots ``pos - 1 - stride j`` (j = 0, 1, ...)
    hold disjoint counts. Cell ``w`` sums counts ``ends[w - 1] .. ends[w] - 1`` (:func:`_window_ends`),
    so window ``w`` (cells 0..w) is the last ``ends[w]`` counts. Written newest cell last:
    row ``nc - 1 - w`` of ``obs_c`` / ``exp_c`` (float64), the layout :func:`_observe` and
    :func:`_monte_carlo` read with ``pos = fill = nc``. Returns ``nc`` (0 when ``fill`` is 0)."""
    if fill <= 0:
        return 0
    W = obs.shape[0]
    n_reg = obs.shape[1]
    nc = _window_ends((fill - 1) // stride + 1, ends)
    j0 = 0
    for w in range(nc):
        j1 = ends[w]
        row = nc - 1 - w
        oc = obs_c[row]
        ec = exp_c[row]
        for r in range(n_reg):
            oc[r] = 0.0
            ec[r] = 0.0
        for j in range(j0, j1):                 # slot by slot (rows of the ring), each sum in the order of j
            slot = (pos - 1 - stride * j) % W
            os_ = obs[slot]
            es_ = exp[slot]
            for r in range(n_reg):
                oc[r] += np.float64(os_[r])
                ec[r] += np.float64(es_[r])
        j0 = j1
    return nc


@njit
def _poisson_sf(c, m):  # pragma: no cover - compiled
    """``P(X >= c)`` for ``X ~ Poisson(m)``, ``c > m > 0`` (terms summed from ``c`` up, in logs)."""
    return _poisson_sf_g(c, m, math.lgamma(c + 1.0))


@njit
def _poisson_sf_g(c, m, g):  # pragma: no cover - compiled
    """:func:`_poisson_sf` with ``g = lgamma(c + 1)`` given (the same value: one function of ``c``)."""
    return _poisson_sf_lg(c, m, math.log(m), g)


@njit
def _poisson_sf_lg(c, m, lm, g):  # pragma: no cover - compiled
    """:func:`_poisson_sf_g` with ``lm = log(m)`` given (the same value)."""
    t = math.exp(c * lm - m - g)
    total = t
    k = c
    while t > 1e-17 * total:
        k += 1.0
        t *= m / k
        total += t
    return total if total < 1.0 else 1.0


@njit
def _tail_bound(Mz, nsize, fill, L, chernoff_only, table):  # pragma: no cover - compiled
    """An upper bound of ``P(replica max LLR >= L)`` under the Poisson null (every cell Poisson with
    its expectation, independent): the union over the zone-windows, ``sum P(C_zw >= c_zw)`` with
    ``c_zw`` the smallest count reaching ``L`` against ``M_zw``. Each term is at most ``exp(-L)``
    (Chernoff: ``P(C >= c) <= exp(-LLR(c, M))``), so ``N exp(-L)`` (``N`` zone-windows with
    ``M > 0``) is returned when ``chernoff_only``, the exact terms otherwise (a term whose count
    cannot be resolved keeps its Chernoff bound)."""
    n_reg = Mz.shape[0]
    e = math.exp(-L)
    total = 0.0
    c = 1.0
    lg = np.full(0 if chernoff_only else 256, np.nan)   # lgamma(c + 1) of the counts met (a few distinct)
    for zc in range(n_reg):
        for s in range(nsize[zc]):
            for w in range(fill):
                m = Mz[zc, s, w]
                if m <= 0.0:
                    continue
                if chernoff_only:
                    total += e
                    continue
                lm = math.log(m)                    # once for the count and its tail
                c = _count_from_l(m, lm, L, table, c)
                if c < math.inf:
                    ic = int(c)
                    if ic < lg.shape[0]:
                        g = lg[ic]
                        if g != g:
                            g = math.lgamma(c + 1.0)
                            lg[ic] = g
                    else:
                        g = math.lgamma(c + 1.0)
                    t = _poisson_sf_lg(c, m, lm, g)
                    total += t if t < e else e
                else:
                    total += e
    return total if total < 1.0 else 1.0


@njit
def _mark(found, nfound, zones, alpha, score, det):  # pragma: no cover - compiled
    for q in range(nfound):
        p = found[q, 1]
        if p <= alpha:
            sc = 1.0 - p
            zc = int(found[q, 2])
            for j in range(int(found[q, 3])):
                r = zones[zc, j]
                if math.isnan(score[r]) or sc > score[r]:
                    score[r] = sc
                    det[r] = CODE_CLUSTER


def scan_indicator(obs, exp, pos, fill, zones, replicas, seed, alpha, score, det, found, table,
                   stride=1, tail=False):
    """Scan one indicator at one cycle.

    ``obs``/``exp`` (W, n_reg): ring buffers of observed / expected counts (0 where unknown),
    slot ``pos - 1`` the newest, ``fill`` slots valid, one slot a cycle; ``stride``: cycles one
    count spans (a ``count_1h`` at 15-minute cycles: 4; the scan's cells are the disjoint counts
    ``stride`` slots apart, :func:`_cells`); ``tail``: p-values below ``1 / (R + 1)`` from the
    union bound where no replica reached a cluster (only where the cells are disjoint counts, so
    that the Poisson null holds: see the module docstring); ``zones`` (n_reg, K); ``seed`` uint64 (already
    mixed with indicator and cycle). Writes ``found`` (MAX_CLUSTERS, 5; field 4 the window in
    cycles) and raises ``score`` / ``det`` (this indicator's rows) for significant clusters.
    Returns the replicas run.

    A Python driver over the compiled steps of :func:`scan_run_kernel` (:func:`_cells`,
    :func:`_observe`, :func:`_monte_carlo` on a one-indicator share, :func:`_window_cycles`) with
    the argument types the run passes them, so that both share one compiled version of each
    (a compiled ``scan_indicator`` re-optimised the whole Monte Carlo once more).
    """
    seed = np.uint64(seed)
    stride = np.int64(stride)
    tail = np.bool_(tail)
    W, n_reg = obs.shape
    ends = np.empty(W + 1, dtype=np.int64)
    ncmax = _window_ends(np.int64((W - 1) // stride + 1), ends)
    obs_c = np.empty((1, ncmax, n_reg))
    exp_c = np.empty((1, ncmax, n_reg))
    nc = _cells(obs, exp, np.int64(pos), np.int64(fill), stride, ends, obs_c[0], exp_c[0])
    f1 = np.empty((1, found.shape[0], found.shape[1]))
    nfound = _observe(obs_c[0], exp_c[0], np.int64(nc), np.int64(nc), zones, f1[0], table)
    if nfound == 0:
        found[:] = f1[0]
        return 0
    stats = np.zeros((1, 3), dtype=np.int64)
    one = np.zeros(1, dtype=np.int64)                       # the kernel's form: one indicator, row 0
    s1 = np.empty((1, score.shape[0]), dtype=score.dtype)
    s1[0] = score
    d1 = np.empty((1, det.shape[0]), dtype=det.dtype)
    d1[0] = det
    _monte_carlo(exp_c, np.full(1, nc, dtype=np.int64), np.full(1, nfound, dtype=np.int64), np.full(1, seed),
                 one, np.zeros(1, dtype=np.int64), zones, np.int64(replicas), np.float64(alpha), f1, table, stats[0], tail,
                 one, s1, d1)
    _window_cycles(f1[0], np.int64(nfound), ends, stride)
    found[:] = f1[0]
    score[:] = s1[0]
    det[:] = d1[0]
    return int(stats[0, 0])


@njit
def _window_cycles(found, nfound, ends, stride):  # pragma: no cover - compiled
    """Field 4 of the clusters: cell number (1-based) -> the window's length in cycles."""
    for q in range(nfound):
        found[q, 4] = ends[int(found[q, 4]) - 1] * stride


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


@njit
def _pairwise_leaf(a, lo, n, zero):  # pragma: no cover - compiled
    """numpy's pairwise sum of ``a[lo:lo + n]`` for ``n <= 128``: eight running sums, then the rest."""
    if n < 8:
        res = zero
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit
def _pairwise_sum(a, lo, n, zero, frames, sv):  # pragma: no cover - compiled
    """``a[lo:lo + n]`` summed as numpy's ``add.reduce`` sums a contiguous row (its pairwise sum: blocks
    of up to 128 in eight running sums, :func:`_pairwise_leaf`; above 128 the two halves split at a
    multiple of 8, summed apart and added), in ``a``'s dtype; ``zero`` that dtype's 0. The halves by an
    explicit stack (a recursive function loaded from numba's cache crashed): ``frames`` int64 (3, 64)
    scratch, ``sv`` (64,) of ``a``'s dtype. numpy's reduction starts from its identity: the caller adds
    ``zero + ...`` (:func:`condition_kernel`)."""
    if n <= 128:
        return _pairwise_leaf(a, lo, n, zero)
    slo = frames[0]                             # frames: a range and how far it is (0 new, 1 left done, 2 both)
    sn = frames[1]
    st = frames[2]                              # (sv: the values of the finished ranges, left before right)
    top = 0
    slo[0] = lo
    sn[0] = n
    st[0] = 0
    nv = 0
    while top >= 0:
        m = sn[top]
        if m <= 128:
            sv[nv] = _pairwise_leaf(a, slo[top], m, zero)
            nv += 1
            top -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if st[top] == 0:
            st[top] = 1
            slo[top + 1] = slo[top]
            sn[top + 1] = n2
            st[top + 1] = 0
            top += 1
        elif st[top] == 1:
            st[top] = 2
            slo[top + 1] = slo[top] + n2
            sn[top + 1] = m - n2
            st[top + 1] = 0
            top += 1
        else:
            sv[nv - 2] = sv[nv - 2] + sv[nv - 1]
            nv -= 1
            top -= 1
    return sv[0]


@njit
def condition_kernel(obs, mu, prior, hours, events, with_prior, oz, mz, wz):  # pragma: no cover - compiled
    """:func:`engine.detect.detectors.condition_on_totals` on rows: ``obs`` (N, n_reg) float32 or float64,
    ``mu`` (N, n_reg) float64 scaled in place, ``prior`` (n_reg,) float64 (read where ``with_prior``: a
    prior and ``events > 0``), ``oz`` / ``mz`` / ``wz`` (n_reg,) scratch of ``obs``'s dtype / float64 /
    float64. The same operations as the numpy form, row by row in one pass instead of a dozen passes
    over the whole part: the sums are numpy's pairwise sums of the masked rows (:func:`_pairwise_sum`
    from numpy's identity 0), every other value one element's own products, quotients and sums in the
    numpy form's order (no fast-math, so no fused or reordered arithmetic): bit for bit the same.
    """
    N, n_reg = mu.shape
    if n_reg == 0:
        return
    frames = np.empty((3, 64), dtype=np.int64)  # _pairwise_sum's scratch
    svo = np.empty(64, dtype=oz.dtype)
    svm = np.empty(64)
    zero_o = np.zeros(1, dtype=oz.dtype)        # 0 in obs's dtype
    okz = np.empty(n_reg, dtype=np.bool_)
    for t in range(N):
        nok = 0
        for r in range(n_reg):                  # the masked rows (selects, no branch)
            o = obs[t, r]
            u = mu[t, r]
            ok = math.isfinite(o) and math.isfinite(u)
            oz[r] = o if ok else zero_o[0]
            mz[r] = u if ok else 0.0
            wz[r] = prior[r] if ok else 0.0
            okz[r] = ok
            nok += ok
        zo = zero_o[0]
        one = zo + np.float32(1.0)              # 1 in obs's dtype
        c = zo + _pairwise_sum(oz, 0, n_reg, zo, frames, svo)
        m = 0.0 + _pairwise_sum(mz, 0, n_reg, 0.0, frames, svm)
        cm = c if c > one else one              # np.maximum(c, 1.0), in c's dtype (c is no NaN)
        f = np.float64(cm) / m if m > 0.0 else 1.0
        if not with_prior:
            for r in range(n_reg):
                mu[t, r] *= f
            continue
        ws = 0.0 + _pairwise_sum(wz, 0, n_reg, 0.0, frames, svm)
        kappa = events * np.float64(nok)
        den = hours * m + kappa
        use = ws > 0.0 and m > 0.0
        g = np.float64(cm) / den if use else 0.0
        for r in range(n_reg):
            sh = wz[r] / ws if ws > 0.0 else 0.0
            sh *= kappa
            sh += mz[r] * hours
            sh *= g
            v = mu[t, r] * f
            mu[t, r] = sh if (use and okz[r]) else v


def clogc_table(n: int = _CLOGC) -> np.ndarray:
    """``c * log(c)`` for whole ``c`` below ``n`` (0 at 0): the replicas' LLRs without a log."""
    c = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    out[1:] = c[1:] * np.log(c[1:])
    return out


@njit
def _hold_cycle(V, scan_ind, scan_mu, obs, exp, pos, zones, alpha, score, det, found, held):  # pragma: no cover - compiled
    """A cycle between two scans (:func:`scan_run_kernel`'s ``every``): push the cycle into slot
    ``pos`` of the rings (the next scan reads it), and hold the last scan's result: ``found`` =
    ``held``, and its significant clusters raise ``score`` / ``det`` of their regions as at the
    scan (:func:`_mark`: ``1 - p`` where that beats the row's other detectors this cycle)."""
    for c in range(scan_ind.shape[0]):
        i = scan_ind[c]
        _push(V[i], scan_mu[c], obs[c], exp[c], pos)
        for q in range(found.shape[1]):
            for f in range(found.shape[2]):
                found[c, q, f] = held[c, q, f]
        _mark(found[c], found.shape[1], zones, alpha, score[i], det[i])


@njit
def _keep(found, held):  # pragma: no cover - compiled
    """``held[:] = found``: the result a scanning cycle leaves for the cycles up to the next scan."""
    for c in range(found.shape[0]):
        for q in range(found.shape[1]):
            for f in range(found.shape[2]):
                held[c, q, f] = found[c, q, f]


@njit
def _stable_order(key, order):  # pragma: no cover - compiled
    """``order[:] = np.argsort(key, kind="mergesort")`` (a stable sort) by insertion: the few
    scanned indicators need no more, and numba's mergesort cost 1.9-2.8 s of CPU to compile."""
    n = key.shape[0]
    for j in range(n):
        v = key[j]
        k = j
        while k > 0 and key[order[k - 1]] > v:
            order[k] = order[k - 1]
            k -= 1
        order[k] = j


@njit
def _is_scan_cycle(cycle, every):  # pragma: no cover - compiled
    """Cycle number ``cycle`` is a scanning cycle at cadence ``every`` (every cycle for 1)."""
    return every <= 1 or cycle % every == 0


def scan_update_kernel(V, scan_ind, scan_mu, obs, exp, ring, zones, replicas, seed, cycle, alpha,
                       score, det, found, table, stride=1, tail=False, every=1, held=None):
    """One cycle for every scanned indicator (each indicator owns its rows of ``score``/``det``):
    :func:`scan_run_kernel` on a one-cycle view of the arguments (``V`` (n_ind, n_reg),
    ``scan_mu`` (n_scan, n_reg), ``cycle`` a number, ``score`` / ``det`` (n_ind, n_reg), ``found``
    (n_scan, MAX_CLUSTERS, 5)), so that updates and runs share one compiled kernel. ``stride``,
    ``tail``: as :func:`scan_indicator`; ``every``, ``held``: as :func:`scan_run_kernel`.

    >>> zones = np.array([[0, 1], [1, 0]], dtype=np.int32)
    >>> obs = np.zeros((1, 4, 2)); exp = np.zeros((1, 4, 2)); ring = np.zeros(2, dtype=np.int64)
    >>> score = np.zeros((1, 2), np.float32); det = np.zeros((1, 2), np.int8); found = np.empty((1, MAX_CLUSTERS, 5))
    >>> scan_update_kernel(np.array([[9.0, 0.0]]), np.array([0]), np.array([[0.5, 0.5]]), obs, exp, ring, zones,
    ...                    99, np.uint64(1), 0, 0.05, score, det, found, clogc_table())
    >>> ring.tolist(), obs[0, 0].tolist(), int(found[0, 0, 2]), int(found[0, 0, 3])
    ([1, 1], [9.0, 0.0], 0, 1)
    """
    n_scan = np.shape(scan_ind)[0]
    hd = np.full((n_scan, MAX_CLUSTERS, len(FOUND_FIELDS)), np.nan) if held is None else held
    scan_run_kernel(V[None], scan_ind, scan_mu[None], obs, exp, ring, zones, replicas, seed,
                    np.array([cycle], dtype=np.int64), alpha, score[None], det[None], found[None], table,
                    np.int64(stride), np.bool_(tail), np.int64(every), hd)


@njit
def _advance(V, scan_ind, scan_mu, obs, exp, ring, zones, alpha, score, det, found, held, cycles, every, t0, finish,
             seed, table, stride, ends, obs_c, exp_c, ncs, key, nf, order, seeds):  # pragma: no cover - compiled
    """:func:`scan_run_kernel`'s serial part, from cycle ``t0`` (of the call) to the next scanning cycle.

    ``finish``: cycle ``t0 - 1`` was a scanning cycle and its clusters are tested: its windows in
    cycles (:func:`_window_cycles`), the held result (:func:`_keep`) and the next ring slot. Then
    cycles ``t0, t0 + 1, ...`` hold (:func:`_hold_cycle`) up to a scanning cycle ``t``, which is
    pushed and its clusters found (testing order into ``order``, replica seeds into
    ``seeds``). Returns ``t`` (``V.shape[0]`` where none is left); the ring position and fill in
    ``ring`` are those of cycle ``t`` (its slot not yet passed)."""
    W = obs.shape[1]
    n_scan = scan_ind.shape[0]
    pos = ring[0]
    fill = ring[1]
    if finish:
        ft = found[t0 - 1]
        _window_ends((fill - 1) // stride + 1, ends)
        for c in range(n_scan):
            if nf[c] > 0:
                _window_cycles(ft[c], nf[c], ends, stride)
        _keep(ft, held)
        pos = (pos + 1) % W
    t = t0
    while t < V.shape[0]:
        fill = fill + 1 if fill < W else W
        if _is_scan_cycle(cycles[t], every):
            # push the cycle into slot pos of the rings, form the cells (_cells) and find the clusters
            # (nf of them; key: minus the largest LLR, 1 for none: the testing order), serial over the
            # indicators: the Monte Carlo is most of a scanning cycle's work. Here, not in a function of
            # its own: each compiled level re-optimises everything it calls
            ft = found[t]
            for c in range(n_scan):
                i = scan_ind[c]
                _push(V[t, i], scan_mu[t, c], obs[c], exp[c], pos)
                ncs[c] = _cells(obs[c], exp[c], pos + 1, fill, stride, ends, obs_c[c], exp_c[c])
                nf[c] = _observe(obs_c[c], exp_c[c], ncs[c], ncs[c], zones, ft[c], table)
                key[c] = -ft[c, 0, 0] if nf[c] > 0 else 1.0
            _stable_order(key, order)
            for c in range(n_scan):
                seeds[c] = _seed(seed, scan_ind[c], cycles[t])
            break
        _hold_cycle(V[t], scan_ind, scan_mu[t], obs, exp, pos, zones, alpha, score[t], det[t], found[t], held)
        pos = (pos + 1) % W
        t += 1
    ring[0] = pos
    ring[1] = fill
    return t


_POOLS: dict = {}


def _thread_pool(n: int):
    """A process-wide pool of ``n`` threads for the Monte Carlo shares (a new one in a forked child)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    key = (n, os.getpid())
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="cityvitals-scan")
    return pool


def scan_run_kernel(V, scan_ind, scan_mu, obs, exp, ring, zones, replicas, seed, cycles, alpha,
                    score, det, found, table, stride=1, tail=False, every=1, held=None):
    """Many cycles: ``V`` (n_t, n_ind, n_reg), ``scan_mu`` (n_t, n_scan, n_reg), ``cycles`` (n_t);
    cycle after cycle, each as :func:`scan_update_kernel` (so run == successive updates).

    A scanning cycle pushes its counts into the rings, forms the cells and finds every
    indicator's clusters (:func:`_advance`, serial), then tests them
    (:func:`_monte_carlo`) on the numba thread count of Python threads (the kernels release the
    GIL): the threads take the indicators in the order of their observed LLR, largest first, each
    the next one as soon as it is done with one (one shared counter, :func:`_take`). Significant
    clusters run all their replicas, the others stop early: a fixed deal (thread ``b`` the ranks
    ``b, b + n, ...``) left one thread ~20 % of a cycle's Monte Carlo idle on the demo's day-10
    cycles (docs/detect.md, "Scan in the demo, 2026-11-30 (eleventh session)"). A Python driver, not one parallel kernel: a
    ``prange`` loop compiles its body as a function of its own that links in and re-optimises the
    whole Monte Carlo, and the kernel around it did so once more (docs/detect.md, "Scan late in
    the run, 2026-11-29 (seventh session)"); the driver costs a few calls a scanning cycle.

    ``every``: the scan's cadence. Cycle number ``k`` is scanned where ``k % every == 0`` (all
    cycles for ``every`` 1, the default); the other cycles only push their counts into the rings
    and hold the last scan's result (:func:`_hold_cycle`). ``held`` (n_scan, MAX_CLUSTERS, 5)
    float64: that result, read on the held cycles and overwritten by every scanning cycle (kept by
    the caller from one call to the next; NaN: no cluster; ``None``: a fresh one, all NaN). A
    scanning cycle's result does not depend on ``every``: the rings get every cycle, and the
    replicas' seed is the cycle's own."""
    import numba

    stride = np.int64(stride)           # not literals (the defaults): one specialisation of the kernels
    tail = np.bool_(tail)
    every = np.int64(every)
    seed = np.uint64(seed)
    replicas = np.int64(replicas)
    alpha = np.float64(alpha)
    n_t = V.shape[0]
    W = obs.shape[1]
    n_reg = obs.shape[2]
    n_scan = np.shape(scan_ind)[0]
    hd = np.full((n_scan, MAX_CLUSTERS, len(FOUND_FIELDS)), np.nan) if held is None else held
    ends = np.empty(W + 1, dtype=np.int64)
    ncmax = n_windows((W - 1) // int(stride) + 1)
    obs_c = np.empty((n_scan, ncmax, n_reg))
    exp_c = np.empty((n_scan, ncmax, n_reg))
    ncs = np.empty(n_scan, dtype=np.int64)
    key = np.empty(n_scan)
    nf = np.empty(n_scan, dtype=np.int64)
    order = np.empty(n_scan, dtype=np.int64)
    seeds = np.empty(n_scan, dtype=np.uint64)
    nt = max(1, min(numba.get_num_threads(), n_scan))
    stats = np.zeros((nt, 3), dtype=np.int64)
    take = np.zeros(1, dtype=np.int64)         # the shares' counter over ``order`` (:func:`_take`)
    t = np.int64(0)
    finish = np.bool_(False)
    while True:
        t = _advance(V, scan_ind, scan_mu, obs, exp, ring, zones, alpha, score, det, found, hd, cycles, every, t,
                     finish, seed, table, stride, ends, obs_c, exp_c, ncs, key, nf, order, seeds)
        if t >= n_t:
            break
        ft, st, dt = found[t], score[t], det[t]
        share = min(nt, int(np.count_nonzero(nf)))
        take[0] = 0
        if share <= 1:
            _monte_carlo(exp_c, ncs, nf, seeds, order, take, zones, replicas, alpha, ft, table,
                         stats[0], tail, scan_ind, st, dt)
        else:
            pool = _thread_pool(share - 1)
            futs = [pool.submit(_monte_carlo, exp_c, ncs, nf, seeds, order, take, zones,
                                replicas, alpha, ft, table, stats[b], tail, scan_ind, st, dt) for b in range(1, share)]
            try:
                _monte_carlo(exp_c, ncs, nf, seeds, order, take, zones, replicas, alpha, ft,
                             table, stats[0], tail, scan_ind, st, dt)
            finally:
                for f in futs:        # every share waited for before an error is raised: no thread still writes
                    f.exception()
            for f in futs:
                f.result()
        t += 1
        finish = np.bool_(True)

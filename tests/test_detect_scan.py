"""The space-time scan's Monte Carlo (engine/detect/scan.py) against tests/detect_reference.py.

The engine draws replicas by table lookup, evaluates only the zones a replica can make
significant and stops a cluster's replicas early (Besag & Clifford); the reference draws
every replica in full, scans every zone and applies the stopping rule afterwards. They must
agree exactly (same random stream, same formulas).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

import detect_reference as ref
import scan_reference as sref
from engine.detect.scan import (MAX_CLUSTERS, _draw_replica, _cell_tables, _llr_t, _poisson, _seed, _threshold,
                                POISSON_TABLE, build_zones, clogc_table, llr, scan_indicator, scan_update_kernel,
                                sequential_h)

TABLE = clogc_table()


def _ring(n, chord=3):
    indptr, indices = [0], []
    for r in range(n):
        nb = sorted({(r - 1) % n, (r + 1) % n} | ({(r + chord) % n, (r - chord) % n} if r % 3 == 0 else set()))
        indices += nb
        indptr.append(len(indices))
    ang = 2 * np.pi * np.arange(n) / n
    return np.array(indptr), np.array(indices), np.cos(ang), np.sin(ang)


def _zones(n, K):
    return build_zones(*_ring(n), K)


def _ring_buffer(newest_first, W, pos):
    """(fill, n) newest first -> a (W, n) ring with the newest at slot pos - 1."""
    fill, n = newest_first.shape
    ring = np.zeros((W, n), dtype=newest_first.dtype)
    for w in range(fill):
        ring[(pos - 1 - w) % W] = newest_first[w]
    return ring


def _case(seed, n=18, fill=3, W=4, planted=False, special=False):
    rng = np.random.default_rng(seed)
    exp = rng.uniform(0.1, 2.5, size=(fill, n)).astype(np.float32)
    exp[:, rng.integers(0, n, 2)] = 0.0                      # regions with no data
    if special:
        exp[0, 3] = 75.0                                       # normal approximation
        exp[1, 5] = 30.0                                       # beyond the cumulative table
        exp[-1, 6] = 0.004
    obs = rng.poisson(exp).astype(np.float32)
    zones = _zones(n, 4)
    if planted:
        obs[:2, zones[5, :3]] += 3
    return obs, exp, zones


def _assert_matches_reference(found, want, alpha, R):
    """The engine's clusters are the reference's (``scan_reference.scan_reference_cells``);
    p-values equal except screened clusters (engine p = 1, no replicas), which the reference's
    full Monte Carlo finds not significant, and the tail bounds of clusters no replica reached
    (p < 1 / (R + 1): Poisson tails summed by scipy in the reference, rtol 1e-9)."""
    np.testing.assert_array_equal(found[:, [0, 2, 3, 4]], want[:, [0, 2, 3, 4]])
    screened = found[:, 1] == 1.0
    tail = want[:, 1] < 1.0 / (R + 1)
    np.testing.assert_array_equal(found[~screened & ~tail, 1], want[~screened & ~tail, 1])
    np.testing.assert_allclose(found[tail, 1], want[tail, 1], rtol=1e-9)
    assert (want[screened, 1] > alpha).all()
    return screened


@pytest.mark.parametrize("seed,planted,special,fill", [(0, False, False, 3), (1, True, False, 3), (2, True, True, 3),
                                                       (3, False, True, 2), (4, True, False, 1), (5, False, False, 4)])
def test_monte_carlo_matches_reference(seed, planted, special, fill):
    obs, exp, zones = _case(seed, fill=fill, planted=planted, special=special)
    W, pos, R, alpha = 4, 2, 199, 0.05
    s = np.uint64(1000 + seed)
    found = np.empty((MAX_CLUSTERS, 5))
    score = np.full(obs.shape[1], np.nan, dtype=np.float32)
    det = np.zeros(obs.shape[1], dtype=np.int8)
    scan_indicator(_ring_buffer(obs, W, pos), _ring_buffer(exp, W, pos), pos, fill, zones, R, s, alpha,
                   score, det, found, TABLE)
    want = sref.scan_reference_cells(obs, exp, [[int(v) for v in z if v >= 0] for z in zones], R, int(s), alpha,
                                     TABLE)
    _assert_matches_reference(found, want, alpha, R)
    if planted:
        assert found[0, 1] <= 0.01
    for q in range(MAX_CLUSTERS):                              # significant clusters score 1 - p
        if found[q, 1] <= alpha:
            members = zones[int(found[q, 2]), :int(found[q, 3])]
            assert (score[members] >= 1 - found[q, 1] - 1e-7).all() and (det[members] == 6).all()
    assert np.isnan(score[det == 0]).all()


def test_sequential_decisions_equal_the_full_test():
    """Stopped clusters have p > alpha both ways; the significant ones never stop."""
    for R, alpha in ((99, 0.05), (999, 0.05), (199, 0.01), (989, 0.05), (1000, 0.05), (19, 0.5)):
        h = sequential_h(R, alpha)
        assert h / R > alpha and (1 + h) / (R + 1) > alpha
        assert h - 1 <= alpha * R                        # h - 1 exceedances over all R can still be significant
    obs, exp, zones = _case(7, planted=True)
    for seed in range(6):
        f_seq = np.empty((MAX_CLUSTERS, 5))
        scan_indicator(obs, exp, 3, 3, zones, 99, np.uint64(seed), 0.05, np.zeros(18, np.float32),
                       np.zeros(18, np.int8), f_seq, TABLE)
        f_full = np.empty((MAX_CLUSTERS, 5))           # alpha = 1: h = R + 1, no cluster ever stops
        scan_indicator(obs, exp, 3, 3, zones, 99, np.uint64(seed), 1.0, np.zeros(18, np.float32),
                       np.zeros(18, np.int8), f_full, TABLE)
        ok = ~np.isnan(f_seq[:, 1])
        assert ((f_seq[ok, 1] <= 0.05) == (f_full[ok, 1] <= 0.05)).all()
        sig = ok & (f_full[:, 1] <= 0.05)
        np.testing.assert_array_equal(f_seq[sig, 1], f_full[sig, 1])
        np.testing.assert_array_equal(f_seq[:, [0, 2, 3, 4]], f_full[:, [0, 2, 3, 4]])


def test_null_calibration():
    """Under the null, P(p <= alpha) ~ alpha within Monte Carlo error (and never above it by more)."""
    n, W = 16, 3
    zones = _zones(n, 4)
    rng = np.random.default_rng(3)
    exp = rng.uniform(0.3, 2.0, size=(W, n)).astype(np.float32)
    ps = []
    N = 800
    for k in range(N):
        obs = rng.poisson(exp).astype(np.float32)
        found = np.empty((MAX_CLUSTERS, 5))
        scan_indicator(obs, exp, W, W, zones, 99, np.uint64(_seed(np.uint64(9), 1, k)), 0.05, np.zeros(n, np.float32),
                       np.zeros(n, np.int8), found, TABLE)
        ps.append(found[0, 1] if not np.isnan(found[0, 1]) else 1.0)
    ps = np.array(ps)
    for a in (0.05, 0.1):
        sd = math.sqrt(a * (1 - a) / N)
        assert abs((ps <= a).mean() - a) <= 3 * sd, ((ps <= a).mean(), a)
    assert (ps <= 0.5).mean() <= 0.5 + 3 * math.sqrt(0.25 / N)   # Besag-Clifford p-values are valid above alpha too


def _draw_tables(exp, with_int=False):
    """The replicas' per-cell tables of expectations ``exp`` (fill, n): mcell, off, F, plast,
    U, J, the normal-approximation cells and (``with_int``) the whole-number table ``Q``."""
    from engine.detect.scan import _int_table

    fill = exp.shape[0]
    ncell = exp.size
    mcell, off = np.empty(ncell), np.empty(ncell, dtype=np.uint64)
    F, plast = np.empty((POISSON_TABLE, ncell)), np.empty(ncell)
    U, J = _cell_tables(exp, fill, fill, mcell, off, F, plast)
    Q = None
    if with_int:
        Q = np.empty((J, ncell), dtype=np.int64)
        _int_table(F, J, Q)
    special = np.flatnonzero(mcell > 50.0).astype(np.int64)
    return mcell, off, F, plast, U, J, special, Q


def test_table_draws_equal_the_inversion():
    rng = np.random.default_rng(1)
    n, fill = 40, 3
    exp = rng.uniform(0.0, 3.0, size=(fill, n)).astype(np.float32)
    exp[0, :5] = [0.0, 55.0, 20.0, 45.0, 1e-3]
    ncell = n * fill
    mcell, off, F, plast, U, J, special, _ = _draw_tables(exp)
    seed = np.uint64(77)
    state = seed
    for rep in range(300):
        k = np.empty(ncell)
        _draw_replica(seed, np.uint64(rep) * np.uint64(U), mcell, off, F, plast, J, special, np.empty(ncell), k)
        for w in range(fill):                          # the slow draws consume the stream in order: w, then r
            for r in range(n):
                m = float(exp[(fill - 1 - w) % fill, r])
                state, v = _poisson(np.uint64(state), m, math.exp(-m))
                assert k[r * fill + w] == v


@pytest.mark.parametrize("seed", range(3))
def test_sparse_draws_equal_the_table_draws(seed):
    """The replicas' whole-number draws (non-zero cells only) are the table draws, cell for cell."""
    from engine.detect.scan import _draw_sparse, _offset_keys

    rng = np.random.default_rng(seed)
    n, fill = 60, 4
    exp = rng.choice([0.0, 0.004, 0.1, 0.1, 0.7, 3.0], size=(fill, n)).astype(np.float32)
    exp[0, :3] = [55.0, 20.0, 45.0]                    # normal approximation, past the table
    ncell = n * fill
    mcell, off, F, plast, U, J, special, Q = _draw_tables(exp, with_int=True)
    seed64 = np.uint64(99 + seed)
    og = np.empty(ncell, dtype=np.uint64)
    _offset_keys(off, og)
    ks = np.zeros(ncell)
    qv, nz = np.empty(ncell, dtype=np.int64), np.empty(ncell + len(special), dtype=np.int64)
    fl = np.empty(ncell, dtype=np.uint8)
    tails = 0
    for rep in range(400):
        base = np.uint64(rep) * np.uint64(U)
        kd = np.empty(ncell)
        _draw_replica(seed64, base, mcell, off, F, plast, J, special, np.empty(ncell), kd)
        nnz = _draw_sparse(seed64, base, mcell, off, og, F, Q, plast, J, special, qv, fl, ks, nz)
        np.testing.assert_array_equal(ks, kd)
        assert set(np.flatnonzero(kd).tolist()) <= set(nz[:nnz].tolist())
        tails += int((kd >= J).sum())
        ks[nz[:nnz]] = 0.0                              # the caller clears what was written
        assert not ks.any()
    assert tails > 0


@pytest.mark.parametrize("seed", range(4))
def test_count_thresholds(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        m = float(np.exp(rng.uniform(-5, 8)))
        T = float(np.exp(rng.uniform(-8, 6)))
        c = _threshold(m, math.log(m), T, TABLE)
        assert c >= m
        below = math.ceil(c) - 1
        if below > m:                                  # nothing below the threshold reaches T
            assert _llr_t(float(below), m, math.log(m), TABLE) < T
            assert llr(float(below), m) < T + 1e-9 * (1 + T)
        assert _llr_t(float(math.ceil(c)) + 1, m, math.log(m), TABLE) >= T - 1e-6 * (1 + T)


@pytest.mark.parametrize("seed", range(3))
def test_llr_is_subadditive(seed):
    """The hot-cell bound: a zone's LLR is at most the sum of its regions' LLRs."""
    rng = np.random.default_rng(seed)
    for _ in range(500):
        k = int(rng.integers(2, 7))
        m = rng.uniform(0.01, 30, k)
        c = rng.poisson(m * rng.uniform(0.2, 4, k)).astype(float)
        assert llr(c.sum(), m.sum()) <= sum(llr(a, b) for a, b in zip(c, m)) + 1e-9



@pytest.mark.parametrize("seed", range(3))
def test_zone_rule_margin_covers_the_replicas_formula(seed):
    """The replicas' zone rule (engine/detect/scan.py ``_zone_margin``): wherever a zone-window's LLR
    as the replicas compute it (``_llr_t`` on the summed count and expectation) is ``>= T``, its
    regions' cell LLRs (``_llr_t`` each, ``inf`` for a count past the table) sum to at least ``T``
    less the margin -- over small and huge expectations and counts, near ties included."""
    from engine.detect.scan import _zone_margin

    rng = np.random.default_rng(seed)
    K = 6
    for _ in range(400):
        scale = float(np.exp(rng.uniform(-7, 11)))
        m = rng.uniform(0.0, 1.0, K) * scale
        m[rng.random(K) < 0.2] = 0.0
        if not (m > 0).any():
            m[0] = scale
        c = rng.poisson(m * rng.uniform(0.5, 3.0, K)).astype(float)
        c[m == 0] = 0.0
        cells = np.concatenate([m, rng.uniform(0.5, 2.0, 20) * m[m > 0].min()])
        margin = _zone_margin(cells, K, float(len(TABLE)))
        parts = [(_llr_t(a, b, math.log(b), TABLE) if a < len(TABLE) else math.inf) if (a > b and b > 0) else 0.0
                 for a, b in zip(c, m)]
        msum = 0.0
        for s in range(K):                            # every prefix, the expectation summed as _zone_sums does
            msum += m[s]
            C = float(c[:s + 1].sum())
            if C > msum and msum > 0:
                z = _llr_t(C, msum, math.log(msum), TABLE)
                assert sum(parts[:s + 1]) >= z - margin, (C, msum, z, parts[:s + 1], margin)


def _kernel_problem(n_scan=9, n=30, W=4):
    from engine.city import City

    city = City.synthetic(seed=4, neighbourhoods=n, streets=3, population=100_000)
    zones = build_zones(city.adj_indptr, city.adj_indices, city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy(), 5)
    rng = np.random.default_rng(0)
    exp = rng.uniform(0.2, 1.5, size=(n_scan, W, n)).astype(np.float32)
    obs = rng.poisson(exp).astype(np.float32)
    for c in range(0, n_scan, 3):
        obs[c, :, zones[(5 * c) % n, :3]] += 2
    n_ind = n_scan + 3
    scan_ind = np.arange(3, n_ind)
    V = np.zeros((n_ind, n), dtype=np.float32)            # the engine's values are float32: one specialisation
    V[3:] = obs[:, W - 1]
    mu = exp[:, W - 1].astype(np.float64)
    return zones, obs, exp, V, scan_ind, mu


def _run_kernel(zones, obs, exp, V, scan_ind, mu, perm=None):
    n_ind, n = V.shape
    perm = np.arange(len(scan_ind)) if perm is None else perm
    score = np.full((n_ind, n), np.nan, dtype=np.float32)
    det = np.zeros((n_ind, n), dtype=np.int8)
    found = np.empty((len(scan_ind), MAX_CLUSTERS, 5))
    W = obs.shape[1]
    ring = np.array([W - 1, W - 1], dtype=np.int64)
    scan_update_kernel(V, scan_ind[perm], mu[perm], obs[perm].copy(), exp[perm].copy(), ring, zones, 199,
                       np.uint64(5), np.int64(12), 0.05, score, det, found, TABLE)
    out = np.empty_like(found)
    out[perm] = found
    return score, det, out


def test_kernel_independent_of_threads_and_order():
    import numba

    p = _kernel_problem()
    base = _run_kernel(*p)
    assert (base[2][::3, 0, 1] <= 0.01).all()
    perm = np.random.default_rng(1).permutation(len(p[4]))
    old = numba.get_num_threads()
    try:
        for k in sorted({1, old}):
            numba.set_num_threads(k)
            for pm in (None, perm):
                got = _run_kernel(*p, perm=pm)
                for a, b in zip(base, got):
                    np.testing.assert_array_equal(a, b)
    finally:
        numba.set_num_threads(old)


def test_kernel_matches_scan_indicator():
    zones, obs, exp, V, scan_ind, mu = _kernel_problem(n_scan=4)
    score, det, found = _run_kernel(zones, obs, exp, V, scan_ind, mu)
    W = obs.shape[1]
    for c, i in enumerate(scan_ind):
        f = np.empty((MAX_CLUSTERS, 5))
        s1 = np.full(V.shape[1], np.nan, dtype=np.float32)
        d1 = np.zeros(V.shape[1], dtype=np.int8)
        scan_indicator(obs[c], exp[c], W, W, zones, 199, np.uint64(_seed(np.uint64(5), i, 12)), 0.05, s1, d1, f, TABLE)
        np.testing.assert_array_equal(f, found[c])
        np.testing.assert_array_equal(s1, score[i])
        np.testing.assert_array_equal(d1, det[i])


def _single_region_exceedance(exp_newest_first, L, n_rep, rng):
    """Monte Carlo of P(some region and window has LLR >= L): single-region zones only, numpy."""
    fill, n = exp_newest_first.shape
    m = exp_newest_first.astype(np.float64)
    M = np.cumsum(m, axis=0)
    hits = 0
    for _ in range(n_rep // 500):
        X = np.cumsum(rng.poisson(m, size=(500, fill, n)), axis=1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            Lr = np.where((X > M) & (M > 0), X * np.log(X / M) - (X - M), 0.0)
        hits += int((Lr.reshape(500, -1).max(axis=1) >= L - 1e-9).sum())
    return hits / (n_rep // 500 * 500)


def _screen_caches(n_reg, fill):
    """Fresh scratch of the values the screen's bounds share (``_exceed_lower_bound``)."""
    return (np.empty(n_reg * fill), np.empty(n_reg * fill), np.empty(n_reg * fill), np.zeros(n_reg, dtype=np.bool_),
            np.empty(n_reg), np.empty(n_reg))


@pytest.mark.parametrize("seed", range(3))
def test_screen_bound_matches_reference_with_shared_caches(seed):
    """``_exceed_lower_bound`` equals ``scan_reference.exceed_lower_bound_reference`` bit for bit, with
    fresh caches and with the caches its earlier calls left (thresholds, logs, first Poisson terms and
    the regions' last bounds shared across levels, in rising, falling and mixed order, levels repeated
    and a hair apart: the same thresholds), early stops included: the demo's small
    cell means (1e-4 to 0.3), some regions repeating the last one's means, a zero mean, larger ones (5
    to 50 a cell: thresholds past the cap) and a cell in the normal approximation."""
    from engine.detect.scan import SCREEN_CAP, _count_for, _exceed_lower_bound

    rng = np.random.default_rng(40 + seed)
    n, fill = 60, 9
    mcell = np.exp(rng.uniform(math.log(1e-4), math.log(0.3), (n, fill)))
    mcell[5:8] = mcell[4]                                     # the same means as the last region bounded
    mcell[10, 3] = 0.0
    mcell[11] = rng.uniform(5.0, 40.0, fill)
    mcell[12, 2] = 75.0                                       # normal approximation: left out
    mcell[13] = rng.uniform(30.0, 50.0, fill)                 # thresholds past SCREEN_CAP
    mcell = mcell.astype(np.float32).astype(np.float64)
    Mcell = np.cumsum(mcell, axis=1).ravel()
    mcell = mcell.ravel()
    single = rng.random(n) < 0.9
    scratch = (np.empty(fill), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP + 1),
               np.empty(SCREEN_CAP + 1))
    Ls = [2.5, 4.0, 4.0 + 1e-9, 5.3, 5.3, 6.8, 9.5, 14.0]
    shared = _screen_caches(n, fill)
    for order in (Ls, Ls[::-1], [Ls[i] for i in rng.permutation(len(Ls))]):
        for L in order:
            want = sref.exceed_lower_bound_reference(mcell, Mcell, fill, single, L,
                                                     lambda M, L_: _count_for(M, L_, TABLE))
            for stop in (math.inf, 0.5 * want, 0.0137):
                w = want if stop == math.inf else sref.exceed_lower_bound_reference(
                    mcell, Mcell, fill, single, L, lambda M, L_: _count_for(M, L_, TABLE), stop)
                got = _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, stop, *shared)
                fresh = _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, stop,
                                            *_screen_caches(n, fill))
                assert got == w and fresh == w, (L, stop, got, fresh, w)


@pytest.mark.parametrize("seed", range(4))
def test_screen_bound_is_the_single_region_probability(seed):
    """The screen's bound equals P(a single-region zone reaches L) (Monte Carlo, 20,000 draws),
    which is at most the probability that the replica max (every zone) reaches L."""
    from engine.detect.scan import SCREEN_CAP, _exceed_lower_bound

    rng = np.random.default_rng(seed)
    n, fill = 25, 4
    exp = rng.choice([0.1, 0.1, 0.1, 0.3, 1.2, 4.0], size=(fill, n)).astype(np.float32)   # newest first
    exp[:, 3] = 0.0
    mcell = exp.T.astype(np.float64).ravel()                   # i = r * fill + w
    Mcell = np.cumsum(exp.T.astype(np.float64), axis=1).ravel()
    single = np.ones(n, dtype=np.bool_)
    for L in (2.0, 4.5, 7.0):
        scratch = (np.empty(fill), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP + 1),
                   np.empty(SCREEN_CAP + 1))
        b = _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, math.inf, *_screen_caches(n, fill))
        est = _single_region_exceedance(exp, L, 20_000, rng)
        assert abs(b - est) <= 4 * math.sqrt(max(est * (1 - est), 1e-4) / 20_000), (L, b, est)
        # the early stop: at a level below the full bound it returns a value at or above the level
        # (not the full bound), at a level above it the full bound
        for stop in (0.5 * b, 0.999 * b, min(2.0 * b, 0.99), 0.0):
            bs = _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, stop, *_screen_caches(n, fill))
            if stop < b * (1 - 1e-6):
                assert bs >= stop, (L, b, stop, bs)
            elif stop > b * (1 + 1e-6):
                assert bs == b, (L, b, stop, bs)


def _bound_cases(rng, n=60, fill=9):
    """Cell means of ``n`` regions x ``fill`` windows as ``test_screen_bound_matches_reference_with_shared_caches``'s:
    the demo's small means, repeats, a zero, large ones, a normal-approximation cell, some regions in no
    single-region zone. Returns (mcell, Mcell, single)."""
    mcell = np.exp(rng.uniform(math.log(1e-4), math.log(0.3), (n, fill)))
    mcell[5:8] = mcell[4]
    mcell[10, 3] = 0.0
    mcell[14] = 0.0
    mcell[11] = rng.uniform(5.0, 40.0, fill)
    mcell[12, 2] = 75.0
    mcell[13] = rng.uniform(30.0, 50.0, fill)
    mcell[15] = rng.uniform(0.5, 3.0, fill)
    mcell = mcell.astype(np.float32).astype(np.float64)
    return mcell.ravel(), np.cumsum(mcell, axis=1).ravel(), rng.random(n) < 0.9


def test_screen_breakpoints_bound_the_thresholds():
    """``_breakpoint(c, Lp, up)`` is at or above (``up``) / at or below the root ``M*`` of ``c log(c / M) - c + M
    = Lp`` (the true LLR at it at most / above ``Lp``: mpmath at 50 digits) and within 1e-6 (relative) of
    it; so an expectation whose computed threshold (``_count_for``) is ``c`` at a level a hair above ``Lp``
    lies at or below the upper one, and one at or below the lower one at a level a hair below has a
    threshold at most ``c``."""
    import mpmath

    from engine.detect.scan import SCREEN_CAP, _breakpoint, _count_for

    mpmath.mp.dps = 50
    rng = np.random.default_rng(3)
    for Lp in (0.05, 0.7, 2.5, 6.0, 9.3, 13.7, 30.0):
        for c in (1, 2, 3, 5, 8, 13, 21, 40, SCREEN_CAP):
            llr = lambda M: c * mpmath.log(mpmath.mpf(c) / M) - c + M      # noqa: E731
            hi = _breakpoint(c, Lp, True)
            lo = _breakpoint(c, Lp, False)
            assert 0.0 < lo <= hi <= c, (c, Lp, lo, hi)
            assert llr(mpmath.mpf(hi)) <= Lp < llr(mpmath.mpf(lo)), (c, Lp, lo, hi)
            if hi < c:
                assert llr(mpmath.mpf(hi) * (1 - mpmath.mpf("1e-6"))) > Lp, (c, Lp, hi)
            assert llr(mpmath.mpf(lo) * (1 + mpmath.mpf("1e-6"))) <= Lp, (c, Lp, lo)
            L_up, L_low = Lp + 1e-6 + 1e-9 * Lp, Lp - 1e-6 - 1e-9 * Lp
            for M in np.exp(rng.uniform(math.log(1e-5), math.log(c), 50)):
                if _count_for(M, L_up, TABLE) == c:
                    assert M <= hi, (c, L_up, M, hi)
                if M <= lo:
                    assert _count_for(M, L_low, TABLE) <= c, (c, L_low, M, lo)


@pytest.mark.parametrize("seed", range(3))
def test_screen_fast_bounds_bracket_the_bound(seed):
    """``_exceed_fast_bound``: the upper one is at or above the union over each region's runs of equal
    thresholds of the Poisson tails at the replicas' thresholds (``scan_reference.exceed_union_reference``,
    scipy), which is at or above the exact bound (``_exceed_lower_bound`` without an early end); the lower
    one is at or below the exact bound and at or below the bound of the largest such tail a region
    (``scan_reference.exceed_max_reference``). Both stay close on these cells (the screen's use); their
    early ends return a value at or above the level."""
    from engine.detect.scan import SCREEN_CAP, _count_for, _exceed_fast_bound, _exceed_lower_bound

    rng = np.random.default_rng(50 + seed)
    n, fill = 60, 9
    mcell, Mcell, single = _bound_cases(rng, n, fill)
    scratch = (np.empty(fill), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP + 1),
               np.empty(SCREEN_CAP + 1))
    B = np.empty(SCREEN_CAP + 1)
    count_for = lambda M, L_: _count_for(M, L_, TABLE)              # noqa: E731
    for L in (1.5, 2.5, 4.0, 5.3, 6.8, 9.5, 11.0, 14.0, 20.0):
        exact = _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, math.inf, *_screen_caches(n, fill))
        union = sref.exceed_union_reference(mcell, Mcell, fill, single, L, count_for)
        most = sref.exceed_max_reference(mcell, Mcell, fill, single, L, count_for)
        ub = _exceed_fast_bound(mcell, Mcell, fill, single, L, B, math.inf, True)
        lb = _exceed_fast_bound(mcell, Mcell, fill, single, L, B, math.inf, False)
        assert most <= exact * (1 + 1e-9) + 1e-15 and exact <= union * (1 + 1e-9) + 1e-15, (L, most, exact, union)
        assert union <= ub * (1 + 1e-9) + 1e-15, (L, union, ub)
        assert lb <= most * (1 + 1e-9) + 1e-15, (L, lb, most)
        assert ub <= 1.5 * union + 1e-12 or ub >= 1.0, (L, ub, union)
        assert lb >= 0.2 * exact, (L, lb, exact)
        for bound, up in ((ub, True), (lb, False)):
            for stop in (0.5 * bound, bound, 0.0137, 0.0):
                got = _exceed_fast_bound(mcell, Mcell, fill, single, L, B, stop, up)
                assert (got >= stop) if stop <= bound * (1 - 1e-12) else (got == bound), (L, up, stop, got, bound)
    bad = mcell.copy()
    bad[int(np.flatnonzero(single)[0]) * fill + 3] = -0.1      # no Poisson mean: not bounded
    assert _exceed_fast_bound(bad, Mcell, fill, single, 9.0, B, math.inf, True) == math.inf
    assert _exceed_fast_bound(bad, Mcell, fill, single, 9.0, B, math.inf, False) == 0.0


def _screen_by_the_loop(exp, fill, zones, pi0, found, nfound):
    """The screen as the loop from the lowest LLR up (before the top-first shortcut): each cluster's
    bound (``_exceed_lower_bound`` to ``pi0``) until one is below ``pi0``."""
    from engine.detect.scan import SCREEN_CAP, _exceed_lower_bound

    n = zones.shape[0]
    slots = [(fill - 1 - w) % exp.shape[0] for w in range(fill)]
    mc = np.array([[float(exp[slots[w], r]) for w in range(fill)] for r in range(n)])
    mcell, Mcell = mc.ravel(), np.cumsum(mc, axis=1).ravel()
    single = np.zeros(n, dtype=np.bool_)
    single[zones[zones[:, 0] >= 0, 0]] = True
    scratch = (np.empty(fill), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP), np.empty(SCREEN_CAP + 1),
               np.empty(SCREEN_CAP + 1))
    active = nfound
    while active > 0:
        L = found[active - 1, 0]
        if 2.0 * n * fill * math.exp(-L) + 1e-9 < pi0:
            break
        if _exceed_lower_bound(mcell, Mcell, fill, single, L, TABLE, *scratch, pi0, *_screen_caches(n, fill)) < pi0:
            break
        found[active - 1, 1] = 1.0
        active -= 1
    return active, (mcell, Mcell, single, scratch)


@pytest.mark.parametrize("seed", range(2))
def test_screen_top_first_keeps_the_loops_decisions(seed):
    """``_screen`` (the top cluster's bound first, to ``pi0`` and a margin) screens exactly the clusters
    the loop from the lowest LLR up screens, with the same ``found``: clusters' LLRs spread over the
    levels where the bound crosses ``pi0`` (found by bisection), a hair either side of it, and one,
    two or three clusters."""
    from engine.detect.scan import SCREEN_CAP, _exceed_fast_bound, _exceed_lower_bound, _screen, screen_level

    rng = np.random.default_rng(70 + seed)
    n, fill = 40, 6
    zones = _zones(n, 4)
    pi0 = screen_level(999, 0.001)
    tops = fast_up = fast_down = 0
    B = np.empty(SCREEN_CAP + 1)
    for case in range(12):
        exp = np.exp(rng.uniform(math.log(3e-4), math.log(0.4), (fill, n))).astype(np.float32)
        exp[:, rng.integers(0, n, 2)] = 0.0
        _, (mcell, Mcell, single, scratch) = _screen_by_the_loop(exp, fill, zones, pi0, np.full((3, 5), np.nan), 0)
        lo, hi = 0.5, 40.0                                          # the LLR where the bound crosses pi0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            b = _exceed_lower_bound(mcell, Mcell, fill, single, mid, TABLE, *scratch, math.inf,
                                    *_screen_caches(n, fill))
            lo, hi = (mid, hi) if b >= pi0 else (lo, mid)
        for nfound in (1, 2, 3):
            Ls = np.sort(rng.choice([lo * (1 - 1e-12), hi * (1 + 1e-12), lo * 0.9, hi * 1.1, lo - 1.0,
                                     hi + 0.5, lo * (1 - 1e-7), hi + 0.02, hi * 1.005], nfound, replace=False))[::-1]
            found = np.full((MAX_CLUSTERS, 5), np.nan)
            found[:nfound, 0] = Ls
            want = found.copy()
            a_want, _ = _screen_by_the_loop(exp, fill, zones, pi0, want, nfound)
            got = found.copy()
            a_got = _screen(exp, fill, fill, zones, pi0, got, nfound, TABLE)
            assert a_got == a_want, (case, nfound, Ls, a_got, a_want)
            np.testing.assert_array_equal(got, want)
            tops += nfound > 1 and a_got == 0
            for L in Ls:                                            # where the fast bounds decide (either way)
                fast_up += _exceed_fast_bound(mcell, Mcell, fill, single, L, B, math.inf, False) >= pi0 * 1.000001 + 1e-8
                fast_down += _exceed_fast_bound(mcell, Mcell, fill, single, L, B, math.inf, True) < pi0 * 0.999999 - 1e-8
    assert tops > 0                                                 # the top-first path decided some
    assert fast_up > 0 and fast_down > 0                            # and the fast bounds some, both ways


def test_screen_level():
    from engine.detect.scan import SCREEN_EPS, _binom_cdf, screen_level

    for R, alpha in ((999, 0.05), (199, 0.05), (99, 0.05), (999, 0.01), (19, 0.5)):
        h = sequential_h(R, alpha)
        pi0 = screen_level(R, alpha)
        assert alpha < pi0 < 1
        assert _binom_cdf(h - 1, R, pi0) <= SCREEN_EPS < _binom_cdf(h - 1, R, pi0 * 0.97)
        exact = sum(math.comb(R, k) * pi0 ** k * (1 - pi0) ** (R - k) for k in range(h))
        assert exact == pytest.approx(_binom_cdf(h - 1, R, pi0), rel=1e-9)
    assert screen_level(99, 1.0) == math.inf                 # no cluster ever stops: no screen
    assert 0.08 < screen_level(999, 0.05) < 0.1


def test_screen_keeps_the_full_tests_decisions():
    """Screened clusters: the full 999-replica test (reference, every replica) finds p > alpha;
    the others keep their p-values exactly. Low counts over floored expectations, as in a run."""
    n, fill, W, pos, R, alpha = 16, 3, 4, 2, 999, 0.05
    zones = _zones(n, 4)
    screened_any = False
    for seed in range(3):
        rng = np.random.default_rng(40 + seed)
        exp = np.full((fill, n), 0.1, dtype=np.float32)
        exp[:, rng.integers(0, n, 3)] = 0.6
        obs = rng.poisson(exp * 1.5).astype(np.float32)
        obs[0, rng.integers(0, n)] += 2
        found = np.empty((MAX_CLUSTERS, 5))
        scan_indicator(_ring_buffer(obs, W, pos), _ring_buffer(exp, W, pos), pos, fill, zones, R, np.uint64(seed),
                       alpha, np.full(n, np.nan, np.float32), np.zeros(n, np.int8), found, TABLE)
        want = sref.scan_reference_cells(obs, exp, [[int(v) for v in z if v >= 0] for z in zones], R, seed, alpha,
                                         TABLE)
        screened_any |= _assert_matches_reference(found, want, alpha, R).any()
    assert screened_any


# ----------------------------------------------------------------------------- disjoint cells, longer windows, tails

def test_window_lengths_and_cells_match_reference():
    from engine.detect.scan import _cells, n_windows, window_lengths

    for k in range(0, 130):
        assert window_lengths(k) == sref.window_lengths_reference(k) and n_windows(k) == len(window_lengths(k))
    rng = np.random.default_rng(11)
    n = 7
    for W, stride, fill in [(24, s, f) for s in (1, 2, 4) for f in (0, 1, 3, 4, 5, 9, 16, 24)] + \
            [(96, s, f) for s in (1, 3, 4) for f in (2, 7, 23, 33, 61, 95, 96)]:  # cells of 1 to 32 counts, odd and even
        newest = rng.poisson(1.0, size=(fill, n)).astype(np.float32)
        ex = rng.uniform(0.0, 2.0, size=(fill, n)).astype(np.float32)
        pos = int(rng.integers(0, W))
        ends = np.empty(W + 1, dtype=np.int64)
        oc, ec = np.full((W, n), np.nan), np.full((W, n), np.nan)
        nc = _cells(_ring_buffer(newest, W, pos), _ring_buffer(ex, W, pos), pos, fill, stride, ends, oc, ec)
        co, ce, lengths = sref.cells_reference(newest, ex, stride)
        assert nc == len(lengths) and ends[:nc].tolist() == lengths
        np.testing.assert_array_equal(oc[:nc][::-1], co)     # newest cell last in the engine's rows
        np.testing.assert_array_equal(ec[:nc][::-1], ce)


@pytest.mark.parametrize("seed,stride,fill,tail,planted", [(0, 4, 16, True, True), (1, 4, 9, False, True),
                                                           (2, 2, 7, True, False), (3, 4, 13, True, True)])
def test_strided_scan_matches_reference(seed, stride, fill, tail, planted):
    """Rings of ``count``s over ``stride`` cycles, one slot a cycle: the engine scans the disjoint
    counts (and their windows) exactly as the reference does on the cells it builds; with
    ``tail``, clusters no replica reached get the union bound (scipy tails in the reference)."""
    n, W, R, alpha = 18, 16, 199, 0.05
    rng = np.random.default_rng(seed)
    exp = rng.uniform(0.05, 1.2, size=(fill, n)).astype(np.float32)
    obs = rng.poisson(exp).astype(np.float32)
    zones = _zones(n, 4)
    if planted:
        obs[::stride, zones[5, :3]] += 4
    pos = int(rng.integers(0, W))
    found = np.empty((MAX_CLUSTERS, 5))
    score = np.full(n, np.nan, dtype=np.float32)
    det = np.zeros(n, dtype=np.int8)
    scan_indicator(_ring_buffer(obs, W, pos), _ring_buffer(exp, W, pos), pos, fill, zones, R, np.uint64(seed), alpha,
                   score, det, found, TABLE, stride, tail)
    want = sref.scan_reference_cells(obs, exp, [[int(v) for v in z if v >= 0] for z in zones], R, seed, alpha, TABLE,
                                     stride=stride, tail=tail)
    _assert_matches_reference(found, want, alpha, R)
    if planted:
        assert (found[0, 1] < 1.0 / (R + 1)) == tail          # far beyond every replica: the tail bound
        assert found[0, 4] % stride == 0


def test_tail_bound_bounds_the_replica_max():
    """The union bound is at least the Monte Carlo probability that the replica max reaches L
    (999 replicas, no stopping: alpha = 1), for L from the body of the null into its tail."""
    from engine.detect.scan import _tail_bound, _zone_sums

    n, fill = 20, 4
    zones = _zones(n, 4)
    exp = np.random.default_rng(5).uniform(0.05, 1.0, size=(fill, n)).astype(np.float32)
    Mz = np.empty((n, 4, fill))
    nsize = np.zeros(n, dtype=np.int64)
    _zone_sums(exp, fill, fill, zones, Mz, nsize, np.empty((fill, n)))
    for planted in (0, 1, 2, 3):
        obs = np.zeros((fill, n), np.float32)
        obs[fill - 1 - np.arange(planted + 1), 4] = planted + 1          # the newest cycles (row fill - 1 newest)
        found = np.empty((MAX_CLUSTERS, 5))
        scan_indicator(obs, exp, fill, fill, zones, 999, np.uint64(planted), 1.0, np.zeros(n, np.float32),
                       np.zeros(n, np.int8), found, TABLE)
        L, p_mc = found[0, 0], found[0, 1]
        assert L > 0
        u = _tail_bound(Mz, nsize, fill, L, False, TABLE)
        want, chern = sref.tail_bound_reference(exp[::-1].astype(np.float64), [[int(v) for v in z if v >= 0]
                                                                                for z in zones], L)
        assert u == pytest.approx(want, rel=1e-9) and u <= chern + 1e-15
        assert _tail_bound(Mz, nsize, fill, L, True, TABLE) == pytest.approx(chern, rel=1e-12)
        e = p_mc * 1000 - 1                                 # replicas that reached L
        assert u >= e / 999 - 3 * math.sqrt(max(e, 1) / 999 ** 2), (L, u, p_mc)


def _incident_counts(n, inc, bg, extra, hours_clean, hours_inc, seed):
    """A ``count_1h`` at 15-minute cycles, as the engine scans it: events Poisson per quarter hour
    (``bg`` an hour a region), ``extra`` events spread over ``inc``'s regions and ``hours_inc`` hours
    after ``hours_clean`` clean ones; each cycle's value the count of its last 4 quarters."""
    rng = np.random.default_rng(seed)
    T = 4 * (hours_clean + hours_inc)
    lam = np.full((T, n), bg / 4)
    if hours_inc:
        lam[4 * hours_clean:, inc] += extra / (4 * hours_inc * len(inc))
    ev = rng.poisson(lam)
    c1h = np.array([ev[max(0, t - 3):t + 1].sum(axis=0) for t in range(T)], dtype=np.float32)
    return c1h


def _scan_cycles(c1h, bg, zones, W, stride, tail, R=999):
    """Cycle by cycle, the newest value pushed into a W-slot ring (expectation ``bg`` an hour, its
    partial share in the first 3 cycles), then the scan: (p of the most likely cluster, its regions)."""
    T, n = c1h.shape
    obs, exp = np.zeros((W, n), np.float32), np.zeros((W, n), np.float32)
    out = []
    for t in range(T):
        obs[t % W], exp[t % W] = c1h[t], bg * min(t + 1, 4) / 4
        found = np.empty((MAX_CLUSTERS, 5))
        scan_indicator(obs, exp, t % W + 1, min(t + 1, W), zones, R, np.uint64(_seed(np.uint64(3), 0, t)), 0.05,
                       np.full(n, np.nan, np.float32), np.zeros(n, np.int8), found, TABLE, stride, tail)
        if np.isnan(found[0, 1]):
            out.append((1.0, set()))
        else:
            out.append((found[0, 1], set(zones[int(found[0, 2]), :int(found[0, 3])].tolist())))
    return out


def _city_zones(n=60):
    from engine.city import City

    city = City.synthetic(seed=4, neighbourhoods=n, streets=3, population=200_000)
    return build_zones(city.adj_indptr, city.adj_indices, city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy(), 6)


def test_planted_three_neighbourhood_cluster_is_found_in_time():
    """An outbreak like the demo's venue_cluster as it would have to show in the feeds: 30 extra
    events over 72 hours in three adjacent neighbourhoods (background 0.05 an hour a region),
    seen through a count_1h at 15-minute cycles. With disjoint hourly counts (stride 4) over a
    64-hour ring the scan finds it (most likely cluster, at least two of its regions) at p <= 0.001
    within 240 cycles (60 h) and at p <= 1e-5 (the tail bound) within its 288 cycles. Measured at
    this seed: 195 and 254 cycles; over seeds 0-11: p <= 0.001 after 89-224 cycles (median ~140),
    p <= 4e-8 (the family-wise level of a 300-neighbourhood run) within 288 cycles at 5 of 12."""
    zones = _city_zones()
    inc = zones[7, :3]
    c1h = _incident_counts(60, inc, 0.05, 30.0, 8, 72, seed=0)
    out = _scan_cycles(c1h, 0.05, zones, W=256, stride=4, tail=True)[32:]
    first = {lvl: next((k for k, (p, m) in enumerate(out) if p <= lvl and len(m & set(inc.tolist())) >= 2), None)
             for lvl in (1e-3, 1e-5)}
    assert first[1e-3] is not None and first[1e-3] <= 240, first
    assert first[1e-5] is not None and first[1e-5] <= 288, first


def test_clean_count_1h_stays_quiet_with_disjoint_cells():
    """72 clean hours (288 cycles) of a count_1h at 15-minute cycles: the scan of the disjoint
    hourly counts keeps the null's level (p <= 0.05 in at most 10 % of the cycles, which are
    correlated through their shared windows; no p below 1e-3). Scanning every cycle's count_1h as
    if the cycles were disjoint (stride 1, the windows overlap and each event is counted up to 4
    times) does not: most cycles look significant."""
    zones = _city_zones()
    c1h = _incident_counts(60, zones[7, :3], 0.05, 0.0, 72, 0, seed=1)
    ok = [p for p, _ in _scan_cycles(c1h, 0.05, zones, W=256, stride=4, tail=True)]
    assert np.mean(np.array(ok) <= 0.05) <= 0.10 and min(ok) > 1e-3
    bad = [p for p, _ in _scan_cycles(c1h[:96], 0.05, zones, W=4, stride=1, tail=False, R=199)]
    assert np.mean(np.array(bad) <= 0.05) >= 0.3


# ---------------------------------------------------------------- the scan in a run (Detectors)
def _counts_and_expectations(seed, shape):
    """Random sparse counts and row-model expectations with scattered NaNs; count 0 at cycle 0
    has no region taking part (every expectation missing)."""
    rng = np.random.default_rng(seed)
    obs = rng.poisson(0.3, shape).astype(np.float32)
    mu = rng.gamma(2.0, 0.1, obs.shape)
    obs[rng.random(obs.shape) < 0.1] = np.nan
    mu[rng.random(mu.shape) < 0.1] = np.nan
    mu[0, 0] = np.nan
    return rng, obs, mu


def _assert_conditioned(obs, got, want):
    """``got`` equals the plain loop's ``want``, and each count's expectations sum to its total (>= 1)."""
    np.testing.assert_allclose(got, want, rtol=1e-12)
    ok = np.isfinite(obs) & np.isfinite(got)
    tot = np.where(ok, got, 0).sum(-1)
    np.testing.assert_allclose(tot[tot > 0], np.maximum(np.where(ok, obs, 0).sum(-1), 1)[tot > 0], rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_condition_on_totals_matches_a_plain_loop(seed):
    from engine.detect.detectors import condition_on_totals

    rng, obs, mu = _counts_and_expectations(seed, (3, 5, 40))
    want = mu.copy()
    for t in range(obs.shape[0]):
        for c in range(obs.shape[1]):
            ok = [r for r in range(obs.shape[2]) if not math.isnan(obs[t, c, r]) and not math.isnan(mu[t, c, r])]
            tot_o = sum(float(obs[t, c, r]) for r in ok)
            tot_m = sum(float(mu[t, c, r]) for r in ok)
            if tot_m > 0:
                for r in range(obs.shape[2]):
                    want[t, c, r] = mu[t, c, r] * max(tot_o, 1.0) / tot_m
    got = mu.copy()
    condition_on_totals(obs, got)
    _assert_conditioned(obs, got, want)


def _conditioning_cases(seed, dtype, whole=None):
    """Random rows for ``condition_on_totals``: 1 to 300 regions (numpy's sum blocks of 8 and 128 and
    their splits), one or two leading axes, whole and fractional counts, NaN and inf in either array,
    zero expectations, an all-missing row, a prior with zero weights (all zero over a row's taking
    regions too), no prior, events 0, hours 0. Yields (obs, mu, args)."""
    rng = np.random.default_rng(seed)
    for n_reg in (1, 7, 8, 9, 17, 128, 129, 257, 300):
        for case in range(4):
            shape = (2, 3, n_reg) if case < 3 else (5, n_reg)
            frac = (case % 2 == 0) if whole is None else not whole
            obs = (rng.gamma(0.5, 3.0, shape) if frac else rng.poisson(1.5, shape)).astype(dtype)
            mu = rng.gamma(0.3, 1.0, shape) * (1e3 if case == 3 else 1.0)
            obs[rng.random(shape) < 0.1] = np.nan
            mu[rng.random(shape) < 0.1] = np.nan
            mu[rng.random(shape) < 0.1] = 0.0
            if case == 2:
                obs[0, 0, 0] = np.inf
                mu[0, 1, -1] = np.inf
                mu[1, 1] = np.nan
                mu[1, 2] = 0.0
            prior = rng.uniform(0, 15000, n_reg) * (rng.random(n_reg) < 0.8)
            if case == 1:
                prior[: n_reg // 2 + 1] = 0.0
            for args in ((), (prior, 50.0, 5.0), (prior, 33.3, 0.0), (prior, 0.0, 1.7), (None, 50.0, 5.0)):
                yield obs, mu, args


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_condition_on_totals_is_the_numpy_form_bit_for_bit(dtype):
    """``condition_on_totals`` (its one-pass kernel, ``scan.condition_kernel``) equals the engine's own
    numpy form (``detectors.condition_on_totals_numpy``: numpy's pairwise sums, the fallback) bit for
    bit on the cases of ``_conditioning_cases``."""
    from engine.detect.detectors import condition_on_totals, condition_on_totals_numpy

    n = 0
    for obs, mu, args in _conditioning_cases(5, dtype):
        got, want = mu.copy(), mu.copy()
        condition_on_totals(obs, got, *args)
        condition_on_totals_numpy(obs, want, *args)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), (obs.shape, len(args))
        n += 1
    assert n == 9 * 4 * 5


@pytest.mark.parametrize("dtype,whole", [(np.float64, None), (np.float32, True), (np.float32, False)])
def test_condition_on_totals_matches_the_plain_reference(dtype, whole):
    """Both of the engine's forms (the kernel and the numpy fallback) against the plain per-row
    reference (``scan_reference.condition_on_totals_reference``: the taking regions listed, totals by
    ``math.fsum``, each region's value by its formula).

    Tolerance: every sum is of terms >= 0 (counts, expectations, weights), so any summation order is
    within ``(n - 1) u`` of the exact sum (relative; ``n <= 300`` terms), and the rest is <= 6 roundings
    of products and quotients of such sums (no subtraction: no cancellation). Float64 sums, and float32
    sums of whole counts (exact below 2**24), give <= 300 * 2**-53 + 6 * 2**-53 < 4e-14: ``rtol`` 1e-12.
    The engine sums fractional float32 counts in float32 (numpy's ``add.reduce`` in the counts' dtype):
    ``(n - 1) 2**-24 <= 299 * 5.96e-8 = 1.79e-5`` on the observed total: ``rtol`` 2e-5 there. Missing
    values (NaN) and infinities must be where the reference has them."""
    from engine.detect.detectors import condition_on_totals, condition_on_totals_numpy

    rtol = 2e-5 if (dtype == np.float32 and not whole) else 1e-12
    n = changed = 0
    for obs, mu, args in _conditioning_cases(7, dtype, whole):
        want = mu.copy()
        sref.condition_on_totals_reference(obs, want, *args)
        for form in (condition_on_totals, condition_on_totals_numpy):
            got = mu.copy()
            form(obs, got, *args)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=f"{form.__name__} {obs.shape} {args[1:]}")
            n += 1
        changed += not np.array_equal(want, mu, equal_nan=True)
    assert n == 2 * 9 * 4 * 5 and changed >= 9 * 4 * 4


def test_detectors_scan_disjoint_counts_of_the_scanned_window():
    from engine.detect import Detectors

    ptr = np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2])      # a chain of 4 regions
    kw = dict(direction=["up_bad"] * 2, seasonality=["none"] * 2, count=[True] * 2, n_reg=4,
              cluster=[True, True], adjacency=ptr, cycle="15min")
    d = Detectors.from_spec(window=["1h", "1h"], **kw)
    assert d.scan_stride == 4 and d.state.scan_obs.shape[1] == 4 * d.params.scan_windows
    assert Detectors.from_spec(window=["1h", "1h"], **{**kw, "cycle": "1h"}).scan_stride == 1
    with pytest.raises(ValueError, match=r"must share one window, got windows of \[4, 96\] cycles"):
        Detectors.from_spec(window=["1h", "24h"], **kw)


@pytest.mark.parametrize("seed", [0, 1])
def test_condition_on_totals_with_a_prior_matches_a_plain_loop(seed):
    """The prior's shares (population) shrink the row model's regional split: ``share_r = (hours mu_r
    + kappa w_r) / (hours sum(mu) + kappa)``, ``kappa = events * n`` over the ``n`` taking regions."""
    from engine.detect.detectors import condition_on_totals

    rng, obs, mu = _counts_and_expectations(seed, (3, 4, 30))
    prior = rng.uniform(500, 15000, obs.shape[-1])
    hours, events = 50.0, 2.0
    want = mu.copy()
    for t in range(obs.shape[0]):
        for c in range(obs.shape[1]):
            ok = [r for r in range(obs.shape[2]) if not math.isnan(obs[t, c, r]) and not math.isnan(mu[t, c, r])]
            if not ok:
                continue
            tot_o = max(sum(float(obs[t, c, r]) for r in ok), 1.0)
            tot_m = sum(float(mu[t, c, r]) for r in ok)
            tot_w = sum(float(prior[r]) for r in ok)
            kappa = events * len(ok)
            for r in ok:
                want[t, c, r] = tot_o * (hours * mu[t, c, r] + kappa * prior[r] / tot_w) / (hours * tot_m + kappa)
            for r in set(range(obs.shape[2])) - set(ok):
                want[t, c, r] = mu[t, c, r] * tot_o / tot_m
    got = mu.copy()
    condition_on_totals(obs, got, prior, hours, events)
    _assert_conditioned(obs, got, want)
    same = mu.copy()
    condition_on_totals(obs, same, prior, hours, 0.0)         # no prior: the plain conditioning
    plain = mu.copy()
    condition_on_totals(obs, plain)
    np.testing.assert_array_equal(same, plain)


def _sparse_city_run(events, monkeypatch, seed=0, n=60, city_per_hour=15.0, days=7, learn_days=3):
    """Clean count_1h at 15-minute cycles over ``n`` regions whose populations spread ~25x, a daily
    rhythm (nights at 0.1 of the mean), events at rates proportional to the population; the scan
    with the split's prior worth ``events`` pseudo-events a region. Returns each scored cycle's
    smallest cluster p (1 where none reached ``scan_alpha``)."""
    import engine.detect.detectors as dd
    from engine.detect import Detectors

    monkeypatch.setattr(dd, "SCAN_PRIOR_EVENTS", events)
    rng = np.random.default_rng(seed)
    ptr, idx, x, y = _ring(n, chord=7)
    pop = np.exp(rng.normal(0.0, 1.0, n)) * 3000
    h = np.arange(24)
    prof = 0.15 + 1.7 * np.exp(-0.5 * ((h - 14) / 4.0) ** 2)
    prof /= prof.mean()
    cyc = days * 96
    lam = city_per_hour * pop / pop.sum()
    q = rng.poisson(np.outer(np.repeat(prof, 4)[np.arange(cyc) % 96] / 4, lam))
    c1h = np.array([q[max(0, t - 3):t + 1].sum(0) for t in range(cyc)], dtype=np.float32)
    d = Detectors.from_spec(direction=["up_bad"], seasonality=["daily"], count=[True], n_reg=n, cluster=[True],
                            adjacency=(ptr, idx), xy=(x, y), window=["1h"], population=pop, spatial=False)
    t0 = np.datetime64("2020-03-02T00:15") + np.arange(cyc) * np.timedelta64(15, "m")
    k = learn_days * 96
    d.learn(c1h[:k, None], t0[:k])
    _, _, ex = d.run(c1h[k:, None], t0[k:], extra=True)
    return np.array([min([c["p_value"] for c in cl] or [1.0]) for cl in ex["clusters"]])


def test_population_prior_keeps_a_sparse_clean_count_quiet(monkeypatch):
    """The 60-day demo's false `tickets_all` clusters in small: the row model's split of a sparse
    count (a shared daily profile in units of each region's spread, floored at the Poisson spread
    of 0.1) sends small regions' expectations to the 1e-3 floor at night while large ones keep
    theirs, so an ordinary ticket in a small region looks like a cluster. Conditioned on the total
    alone (no prior), clean data gives cycles far below the alert level (~1e-4 for 59 scans); with
    the population prior (the default strength) none are, and p <= 1e-3 stays near its nominal rate."""
    import engine.detect.detectors as dd

    default = dd.SCAN_PRIOR_EVENTS
    old = _sparse_city_run(0.0, monkeypatch)
    new = _sparse_city_run(default, monkeypatch)
    assert (old <= 1e-4).sum() >= 5, np.sort(old)[:10]
    assert (new <= 1e-4).sum() == 0 and (new <= 1e-3).mean() <= 0.02, np.sort(new)[:10]


# --------------------------------------------------------------------------- the scan's cadence

def _cadence_run(every, n_scan=6, n=24, stride=4, n_t=21, c0=37):
    """``scan_run_kernel`` over ``n_t`` cycles (cycle numbers from ``c0``) of counts over ``stride``
    cycles, a cluster planted in half the indicators from cycle 8; the rows' own scores before the
    scan (``base``) are random, so a held cluster's marks show against them."""
    from engine.detect.scan import scan_run_kernel

    rng = np.random.default_rng(11)
    zones = _zones(n, 4)
    W = stride * 6
    mu = rng.uniform(0.2, 1.2, size=(n_t, n_scan, n))
    V = np.zeros((n_t, n_scan + 2, n), dtype=np.float32)
    V[:, 2:] = rng.poisson(mu)
    V[8:, 2::2, :][:, :, zones[7, :3]] += 4.0
    V[rng.random(V.shape) < 0.05] = np.nan
    base = rng.uniform(0.0, 0.9, size=V.shape).astype(np.float32)
    base[rng.random(V.shape) < 0.1] = np.nan
    score = base.copy()
    det = np.ones(V.shape, dtype=np.int8)
    found = np.empty((n_t, n_scan, MAX_CLUSTERS, 5))
    obs = np.zeros((n_scan, W, n), dtype=np.float32)
    exp = np.zeros((n_scan, W, n), dtype=np.float32)
    ring = np.zeros(2, dtype=np.int64)
    held = np.full((n_scan, MAX_CLUSTERS, 5), np.nan)
    cycles = np.arange(c0, c0 + n_t, dtype=np.int64)
    scan_run_kernel(V, np.arange(2, n_scan + 2), mu, obs, exp, ring, zones, 199, np.uint64(3), cycles, 0.01,
                    score, det, found, TABLE, np.int64(stride), np.bool_(True), np.int64(every), held)
    return dict(zones=zones, base=base, score=score, det=det, found=found, obs=obs, exp=exp, ring=ring, held=held,
                cycles=cycles)


def test_held_cycles_carry_the_last_scan_and_scanning_cycles_equal_the_scan_every_cycle():
    """Cadence 4: the scanning cycles (cycle number % 4 == 0) give exactly what a scan every cycle
    gives; each other cycle reports the last scan's clusters and marks their regions on its own rows'
    scores (1 - p where that beats them, code 6), none before the first scan; the rings are the same."""
    old = _cadence_run(1)
    new = _cadence_run(4)
    cycles, alpha = new["cycles"], 0.01
    for k in ("obs", "exp", "ring"):
        np.testing.assert_array_equal(new[k], old[k])
    last = None
    held_sig = 0
    for t, cyc in enumerate(cycles):
        if cyc % 4 == 0:
            last = t
            np.testing.assert_array_equal(new["found"][t], old["found"][t])
            np.testing.assert_array_equal(new["score"][t].view(np.int32), old["score"][t].view(np.int32))
            np.testing.assert_array_equal(new["det"][t], old["det"][t])
            continue
        want_s = new["base"][t].copy()
        want_d = np.ones_like(new["det"][t])
        if last is None:
            assert np.isnan(new["found"][t]).all()
        else:
            np.testing.assert_array_equal(new["found"][t], new["found"][last])
            for c in range(new["found"].shape[1]):
                for q in range(MAX_CLUSTERS):
                    p = new["found"][t, c, q, 1]
                    if not p <= alpha:
                        continue
                    held_sig += 1
                    for r in new["zones"][int(new["found"][t, c, q, 2]), :int(new["found"][t, c, q, 3])]:
                        if np.isnan(want_s[c + 2, r]) or np.float32(1.0 - p) > want_s[c + 2, r]:
                            want_s[c + 2, r] = np.float32(1.0 - p)
                            want_d[c + 2, r] = 6
        np.testing.assert_array_equal(new["score"][t].view(np.int32), want_s.view(np.int32))
        np.testing.assert_array_equal(new["det"][t], want_d)
    np.testing.assert_array_equal(new["held"], new["found"][last])
    assert held_sig >= 6                       # held clusters did raise scores
    held_t = [t for t, cyc in enumerate(cycles) if cyc % 4 and t > 3]
    assert any(not np.array_equal(new["found"][t], old["found"][t], equal_nan=True) for t in held_t)


def test_detectors_scan_once_per_count_window_and_hold_between():
    """``Detectors`` at 15-minute cycles with hourly counts scan on the hour (``scan_every`` 4): the
    same scores, codes and clusters there as ``scan_every`` 1; between scans the last scan's
    clusters; ``run`` == successive ``update``s; ``learn`` leaves nothing held; a state saved between
    scans restores the held clusters (the restarted detectors go on exactly as the saved ones)."""
    from engine.detect import Detectors

    n = 12
    ptr = [0]
    idx = []
    for r in range(n):                                   # a chain of 12 regions
        nb = [x for x in (r - 1, r + 1) if 0 <= x < n]
        idx += nb
        ptr.append(len(idx))
    kw = dict(direction=["up_bad"] * 3, seasonality=["none"] * 3, count=[True] * 3, n_reg=n,
              cluster=[True, True, False], adjacency=(np.array(ptr), np.array(idx)), cycle="15min",
              window=["1h", "1h", "1h"], warmup_cycles=4, scan_replicas=99, scan_windows=6)
    a, b, c = (Detectors.from_spec(**kw) for _ in range(3))
    assert a.scan_every == 4
    c.scan_every = 1
    with pytest.raises(ValueError, match="scan_every must be a whole number >= 1, got 0"):
        c.scan_every = 0
    rng = np.random.default_rng(4)
    n_t = 40
    q = rng.poisson(0.5, size=(n_t + 3, 3, n)).astype(np.float32)
    q[22:, 0, 4:7] += 3.0                                 # a cluster in the first scanned count
    V = q[3:] + q[2:-1] + q[1:-2] + q[:-3]               # hourly counts every 15 minutes
    times = np.datetime64("2024-01-01T00:15") + np.arange(n_t) * np.timedelta64(15, "m")
    sa, da, ea = a.run(V, times, extra=True)
    sc, dc, ec = c.run(V, times, extra=True)
    outs = [b.update(V[t], times[t]) for t in range(n_t)]
    np.testing.assert_array_equal(sa.view(np.int32), np.stack([o[0] for o in outs]).view(np.int32))
    np.testing.assert_array_equal(da, np.stack([o[1] for o in outs]))
    assert ea["clusters"] == [o[2]["clusters"] for o in outs]
    cyc = [int(o[2]["cycle"]) for o in outs]
    last = None
    for t in range(n_t):
        if cyc[t] % 4 == 0:
            last = t
            np.testing.assert_array_equal(sa[t].view(np.int32), sc[t].view(np.int32))
            np.testing.assert_array_equal(da[t], dc[t])
            assert ea["clusters"][t] == ec["clusters"][t]
        else:
            assert ea["clusters"][t] == ([] if last is None else ea["clusters"][last])
            np.testing.assert_array_equal(sa[t, 2], sc[t, 2])    # not scanned: untouched
    assert sum(len(x) > 0 for x in ea["clusters"]) >= 8 and (da == 6).any()
    held = a.scan_held.copy()
    assert np.isfinite(held).any()
    a.learn(V[:4], times[-1] + np.timedelta64(15, "m") * np.arange(1, 5))
    assert np.isnan(a.scan_held).all()
    # the held clusters are part of the saved state: a restart between scans holds them exactly
    mid = next(t for t in range(n_t) if cyc[t] % 4 == 1 and t > 24)
    d = Detectors.from_spec(**kw)
    for t in range(mid + 1):
        d.update(V[t], times[t])
    assert np.isfinite(d.scan_held).any()
    e = Detectors.from_spec(**kw)
    e.load(d.save(Path(tempfile.mkdtemp()) / "s.npz"))
    np.testing.assert_array_equal(e.scan_held, d.scan_held)
    for t in range(mid + 1, min(mid + 4, n_t)):
        od, oe = d.update(V[t], times[t]), e.update(V[t], times[t])
        np.testing.assert_array_equal(od[0].view(np.int32), oe[0].view(np.int32))
        assert od[2]["clusters"] == oe[2]["clusters"]
    # a rebaselined scanned indicator holds nothing until its next scan
    from engine.detect.rebaseline import rebaseline
    k = int(np.flatnonzero(e.scan_slot >= 0)[0])
    rebaseline(e, [k])
    assert np.isnan(e.scan_held[e.scan_slot[k]]).all()


@pytest.mark.parametrize("seed", range(3))
def test_stable_order_is_a_stable_argsort(seed):
    """The testing order of a scanning cycle (insertion sort in the kernel) equals numpy's stable
    argsort, ties (indicators without a cluster: key 1; equal LLRs) kept in indicator order."""
    from engine.detect.scan import _stable_order

    rng = np.random.default_rng(seed)
    for n in (0, 1, 2, 7, 55, 64):
        for key in (-rng.random(n), rng.choice([-3.0, -2.5, -1.0, 0.5, 1.0], size=n)):
            order = np.empty(n, dtype=np.int64)
            _stable_order(key, order)
            assert order.tolist() == np.argsort(key, kind="mergesort").tolist()


# ----------------------------------------------------------------------------- seventh session: dense draws, sure clusters

@pytest.mark.parametrize("seed", range(3))
def test_dense_draws_equal_the_sparse_draws(seed):
    """``_draw_dense`` (every cell, whole-number comparisons) gives the table draws of ``_draw_replica``
    and ``_draw_sparse``, cell for cell, past the table and in normal-approximation cells too."""
    from engine.detect.scan import _draw_dense, _offset_keys

    rng = np.random.default_rng(seed)
    n, fill = 60, 4
    exp = rng.choice([0.0, 0.004, 0.1, 0.7, 3.0, 8.0], size=(fill, n)).astype(np.float32)
    exp[0, :3] = [55.0, 20.0, 45.0]
    ncell = n * fill
    mcell, off, F, plast, U, J, special, Q = _draw_tables(exp, with_int=True)
    seed64 = np.uint64(7 + seed)
    og = np.empty(ncell, dtype=np.uint64)
    _offset_keys(off, og)
    qv, kd = np.empty(ncell, dtype=np.int64), np.empty(ncell)
    tails = 0
    for rep in range(300):
        base = np.uint64(rep) * np.uint64(U)
        want = np.empty(ncell)
        _draw_replica(seed64, base, mcell, off, F, plast, J, special, np.empty(ncell), want)
        kd.fill(-1.0)
        _draw_dense(seed64, base, mcell, off, og, F, Q, plast, J, special, qv, kd)
        np.testing.assert_array_equal(kd, want)
        tails += int((want >= J).sum())
    assert tails > 0


@pytest.mark.parametrize("seed,scale,tail", [(0, 0.05, True), (1, 0.05, False), (2, 0.15, True), (3, 1.0, True)])
def test_sparse_and_dense_series_match_reference(seed, scale, tail):
    """Low-count series (few cells with a count: the replicas draw only those) and high-count ones
    (every cell drawn) give the reference's clusters and p-values, planted clusters included."""
    n, W, R, alpha, fill = 24, 8, 199, 0.05, 6
    rng = np.random.default_rng(seed)
    exp = (scale * rng.uniform(0.2, 2.0, size=(fill, n))).astype(np.float32)
    obs = rng.poisson(exp).astype(np.float32)
    zones = _zones(n, 4)
    obs[:3, zones[4, :2]] += 2 if scale < 0.5 else 6
    pos = int(rng.integers(0, W))
    found = np.empty((MAX_CLUSTERS, 5))
    score = np.full(n, np.nan, dtype=np.float32)
    det = np.zeros(n, dtype=np.int8)
    scan_indicator(_ring_buffer(obs, W, pos), _ring_buffer(exp, W, pos), pos, fill, zones, R, np.uint64(50 + seed),
                   alpha, score, det, found, TABLE, 1, tail)
    want = sref.scan_reference_cells(obs, exp, [[int(v) for v in z if v >= 0] for z in zones], R, 50 + seed, alpha,
                                     TABLE, tail=tail)
    _assert_matches_reference(found, want, alpha, R)
    assert found[0, 1] <= alpha


@pytest.mark.parametrize("seed", range(3))
def test_sure_clusters_get_no_replicas_and_the_full_tests_p(seed):
    """A cluster far beyond any replica (``R U <= SURE_EPS``) stops the replicas once the others
    have stopped: its p is the union bound, as with all ``R`` replicas (none reaches it), and the
    other clusters' p-values are the reference's; a marginal one still runs every replica."""
    from engine.detect.scan import SURE_EPS

    n, W, R, alpha, fill = 30, 8, 999, 0.001, 6
    rng = np.random.default_rng(seed)
    exp = rng.uniform(0.05, 0.4, size=(fill, n)).astype(np.float32)
    obs = rng.poisson(exp).astype(np.float32)
    zones = _zones(n, 4)
    strong = obs.copy()
    strong[:4, zones[3, :3]] += 6
    runs = {}
    for name, o in (("strong", strong), ("plain", obs)):
        found = np.empty((MAX_CLUSTERS, 5))
        score = np.full(n, np.nan, dtype=np.float32)
        det = np.zeros(n, dtype=np.int8)
        runs[name] = scan_indicator(_ring_buffer(o, W, 0), _ring_buffer(exp, W, 0), 0, fill, zones, R,
                                    np.uint64(70 + seed), alpha, score, det, found, TABLE, 1, True)
        want = sref.scan_reference_cells(o, exp, [[int(v) for v in z if v >= 0] for z in zones], R, 70 + seed,
                                         alpha, TABLE, tail=True)
        _assert_matches_reference(found, want, alpha, R)
        if name == "strong":
            assert found[0, 1] * R <= SURE_EPS                 # the union bound, far below 1 / (R + 1)
            assert (score[zones[3, :3]] >= 1 - 1e-6).all() and (det[zones[3, :3]] == 6).all()
    assert runs["strong"] < R                                  # the sure cluster ran no replica of its own


# ----------------------------------------------------------------------------- ninth session: uniform keys, screen shortcut

@pytest.mark.parametrize("seed", range(3))
def test_uniform_keys_equal_the_counter_uniforms(seed):
    """The replicas' whole-number uniforms from the cells' keys (``seed + base GAMMA + og``, mod 2**64)
    are those of ``_uniform_at(seed, base + off)``, bit for bit, where every sum and product wraps."""
    from engine.detect.scan import _UNIT, _offset_keys, _uniform_at, _uniform_keys

    rng = np.random.default_rng(seed)
    off = rng.integers(0, 2**62, size=300, dtype=np.uint64)
    off[:3] = [0, 2**62 - 1, 12345]
    og = np.empty(off.shape[0], dtype=np.uint64)
    _offset_keys(off, og)
    qv = np.empty(off.shape[0], dtype=np.int64)
    for s0, b in [(0, 0), (2**64 - 1, 2**63 + 5), (int(rng.integers(0, 2**63)) * 2 + 1, int(rng.integers(0, 2**63)))]:
        _uniform_keys(np.uint64(s0), np.uint64(b), og, qv)
        want = np.array([_uniform_at(np.uint64(s0), np.uint64(b) + o) for o in off])
        np.testing.assert_array_equal(qv * _UNIT, want)
        assert qv.min() >= 1 and qv.max() <= 2**53


@pytest.mark.parametrize("seed", range(3))
def test_count_from_a_guess_is_count_for(seed):
    """``_count_from`` (one count at a time from a neighbouring window's count) returns ``_count_for``'s
    count, bit for bit, for any guess (NaN, inf, 0, far above or below), expectations 1e-6 to 5e3 (past
    the fast range), thresholds 0.3 to 500, at the fast range's edges, and counts past the table."""
    from engine.detect.scan import _FAST_M, _FAST_T, _count_for, _count_from

    rng = np.random.default_rng(seed)
    n = 4000
    M = np.exp(rng.uniform(math.log(1e-6), math.log(5e3), n))
    L = np.exp(rng.uniform(math.log(0.3), math.log(500.0), n))
    M[:40] = _FAST_M
    M[40:80] = np.nextafter(_FAST_M, 2 * _FAST_M)
    L[80:120] = _FAST_T + 1e-7 + rng.uniform(-1e-6, 1e-6, 40)
    M[120:140], L[120:140] = 900.0, 3e4                 # counts past the table of c log c
    M[140:150] = [0.0, -1.0, 1e-300, 5e-324, 1.0, 1.0, 2.0, 3.0, np.inf, np.nan]
    L[140:150] = [3.0, 3.0, 3.0, 3.0, 0.0, -1.0, np.nan, np.inf, 3.0, 3.0]
    for i in range(n):
        want = _count_for(M[i], L[i], TABLE)
        for g in (np.nan, np.inf, 0.0, 1.0, 99999.0, 2e5, want - 2.0, want - 1.0, want, want + 1.0, want + 3.0):
            got = _count_from(M[i], L[i], TABLE, g)
            assert got == want or (math.isinf(got) and math.isinf(want)), (M[i], L[i], g, got, want)


def test_tail_bound_terms_are_the_poisson_tails():
    """The exact union bound's terms (thresholds searched from the last one, ``lgamma`` kept per count)
    sum, in the same order, to the bound computed term by term with ``_count_for`` and ``_poisson_sf``."""
    from engine.detect.scan import _count_for, _poisson_sf, _tail_bound, _zone_sums

    rng = np.random.default_rng(5)
    n, K, fill = 30, 4, 5
    zones = np.full((n, K), -1, dtype=np.int64)
    for zc in range(n):                                 # zone zc: region zc and up to K - 1 others
        k = int(rng.integers(1, K + 1))
        zones[zc, :k] = np.r_[zc, rng.choice(np.delete(np.arange(n), zc), K - 1, replace=False)][:k]
    exp = rng.choice([0.0, 1e-3, 0.05, 0.4, 3.0, 40.0, 800.0], size=(fill, n))
    Mz, Mw = np.empty((n, K, fill)), np.empty((fill, n))
    nsize = np.zeros(n, dtype=np.int64)
    _zone_sums(exp, fill, fill, zones, Mz, nsize, Mw)
    for L in (0.4, 2.5, 9.0, 31.0, 400.0):
        e, want = math.exp(-L), 0.0
        for zc in range(n):
            for s in range(nsize[zc]):
                for w in range(fill):
                    m = Mz[zc, s, w]
                    if m <= 0.0:
                        continue
                    c = _count_for(m, L, TABLE)
                    t = _poisson_sf(c, m) if c < math.inf else e
                    want += t if t < e else e
        assert _tail_bound(Mz, nsize, fill, L, False, TABLE) == min(want, 1.0), L


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_observe_on_sparse_counts_matches_reference(seed):
    """``_observe``'s shortcuts (sums only over a zone prefix's windows with a count; no LLR for a window with
    the last one's count over more expectation) give the written-out search's clusters, bit for bit: sparse
    counts repeated over the nested windows, regions with no expectation (the same ``m`` over windows), tiny
    and large expectations, counts past the ``c log c`` table, fractional counts."""
    from engine.detect.scan import _observe
    rng = np.random.default_rng(500 + seed)
    n, fill = 40, 9
    zones = _zones(n, 5)
    zl = [[int(v) for v in z if v >= 0] for z in zones]
    for case in range(12):
        exp = rng.choice([0.0, 1e-6, 0.003, 0.05, 0.4, 3.0], size=(fill, n), p=[.1, .05, .35, .3, .15, .05])
        obs = (rng.random((fill, n)) < 0.08) * rng.integers(1, 4, size=(fill, n)).astype(np.float64)
        if case % 4 == 1:
            obs[rng.integers(0, fill), rng.integers(0, n)] = 5000.0          # past the table
        if case % 4 == 2:
            obs[obs > 0] += 0.5                                             # fractional counts
        if case % 4 == 3:
            exp[:, rng.integers(0, n, 6)] = 0.0                            # no expectation at all
        found = np.empty((MAX_CLUSTERS, 5))
        nf = _observe(np.ascontiguousarray(obs[::-1]), np.ascontiguousarray(exp[::-1]), np.int64(fill), np.int64(fill),
                      zones, found, TABLE)
        want = ref.scan_reference(obs, exp, zl, 0, 0, 0.05, TABLE)
        np.testing.assert_array_equal(found[:, [0, 2, 3, 4]], want[:, [0, 2, 3, 4]])
        assert nf == int(np.count_nonzero(~np.isnan(want[:, 0])))


def _observe_cases(rng, n, fill):
    """Cells for ``_observe``'s lazy search (newest first): sparse and dense counts, exact ties between
    regions and zones, counts a hair above their expectation, fractional counts, counts over no expectation,
    and (kind 5) a cell negative or NaN (the bound is then not used)."""
    for kind in range(6):
        for _ in range(4):
            exp = rng.choice([0.0, 1e-6, 0.003, 0.05, 0.4, 3.0, 40.0], size=(fill, n),
                             p=[.1, .05, .3, .3, .15, .05, .05])
            dens = rng.choice([0.02, 0.08, 0.3, 0.9])
            obs = (rng.random((fill, n)) < dens) * rng.integers(1, 4, size=(fill, n)).astype(np.float64)
            if kind == 1:                                               # identical regions: ties
                src = rng.integers(0, n)
                for d in rng.integers(0, n, 6):
                    obs[:, d], exp[:, d] = obs[:, src], exp[:, src]
            elif kind == 2:                                             # one value everywhere: ties everywhere
                exp[:] = 0.05
                obs[:] = (rng.random((fill, n)) < 0.1) * 1.0
            elif kind == 3:                                             # c a hair above m, fractional counts
                exp = obs * (1.0 - rng.choice([1e-15, 1e-12, 1e-9, 0.0], size=obs.shape)) + (obs == 0) * 0.01
                obs[obs > 0] += rng.choice([0.0, 0.5, 1e-9])
            elif kind == 4:                                             # counts over no expectation
                exp[:, rng.integers(0, n, 4)] = 0.0
            elif kind == 5:                                             # a negative or NaN cell
                v = rng.choice([np.nan, -1.0, -0.0])
                if rng.random() < 0.5:
                    obs[rng.integers(0, fill), rng.integers(0, n)] = v
                else:
                    exp[rng.integers(0, fill), rng.integers(0, n)] = v
            yield kind, obs, exp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_observe_lazy_search_matches_reference(seed):
    """``_observe`` computes a longer zone prefix's LLRs only where the sum of its regions' own largest LLRs
    (and a margin) reaches the best value known: the clusters (LLR, centre, size, window) are still the
    written-out search's over every zone, bit for bit, with its ties in the scan's order."""
    from engine.detect.scan import _observe
    rng = np.random.default_rng(700 + seed)
    for n, K, fill in ((40, 5, 9), (90, 6, 4), (12, 3, 1)):
        zones = _zones(n, K)
        zl = [[int(v) for v in z if v >= 0] for z in zones]
        for kind, obs, exp in _observe_cases(rng, n, fill):
            found = np.empty((MAX_CLUSTERS, 5))
            nf = _observe(np.ascontiguousarray(obs[::-1]), np.ascontiguousarray(exp[::-1]), np.int64(fill),
                          np.int64(fill), zones, found, TABLE)
            want = ref.scan_reference(obs, exp, zl, 0, 0, 0.05, TABLE)
            np.testing.assert_array_equal(found[:, [0, 2, 3, 4]], want[:, [0, 2, 3, 4]], err_msg=f"kind {kind}")
            assert nf == int(np.count_nonzero(~np.isnan(want[:, 0])))


@pytest.mark.parametrize("seed", [0, 1])
def test_observe_prefix_bound_covers_every_prefix(seed):
    """The lazy search's bound: every zone prefix's computed LLR at every window (the reference's formula) is at
    most the sum of its regions' own largest LLRs times ``_prefix_factor`` plus ``_prefix_margin`` (counts and
    expectations >= 0; a region with a count and no expectation is left out here, its term is ``inf``) -- and
    the bound is not loose by much where it matters (a single hot region: within 2 % of its zone's LLR)."""
    from engine.detect.scan import _prefix_factor, _prefix_margin
    rng = np.random.default_rng(800 + seed)
    n, K, fill = 40, 6, 9
    zones = _zones(n, K)
    zl = [[int(v) for v in z if v >= 0] for z in zones]
    checked = 0
    for kind, obs, exp in _observe_cases(rng, n, fill):
        if kind in (4, 5):
            continue
        exp[obs > 0] = np.maximum(exp[obs > 0], 1e-6)                   # a count has an expectation
        C, M = np.cumsum(obs, axis=0), np.cumsum(exp, axis=0)
        L = ref._zone_llrs(C, M, zl, TABLE)
        Lr = np.array([max(L[r, 0, w] for w in range(fill)) if zl[r][0] == r else 0.0 for r in range(n)])
        margin = _prefix_margin(K * C[-1].max(), K * M[-1].max(), K)
        for zc, z in enumerate(zl):
            ub = 0.0
            for s, r in enumerate(z):
                ub += Lr[r]
                for w in range(fill):
                    assert L[zc, s, w] <= ub * _prefix_factor(K) + margin
                    checked += 1
    assert checked > 10000
    obs = np.zeros((fill, n))
    exp = np.full((fill, n), 0.05)
    obs[0, 7] = 6.0
    C, M = np.cumsum(obs, axis=0), np.cumsum(exp, axis=0)
    L = ref._zone_llrs(C, M, zl, TABLE)
    assert L[7, 0, 0] * _prefix_factor(K) + _prefix_margin(K * 6.0, K * M[-1].max(), K) < L[7, 0, 0] * 1.02

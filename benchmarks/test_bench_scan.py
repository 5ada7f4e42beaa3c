"""Space-time scan: 300 neighbourhoods, 999 Monte Carlo replicas, the catalog's cluster-scan count indicators.

Engine: ``scan_update_kernel`` (parallel over indicators). Peer: a plain numpy scan of the
observed most likely cluster (LLR over every zone and window, vectorised), without the Monte
Carlo (scale: its time times the replicas + 1 stands for the full test), which must find the
same LLR. Half of the indicators carry a planted three-neighbourhood outbreak, so their replicas
run to the end (all 999: p <= 0.01); the others stop early (Besag-Clifford, p > alpha) -- see
docs/detect.md for the worst case, every indicator significant.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.city import City
from engine.detect.scan import MAX_CLUSTERS, build_zones, clogc_table, scan_update_kernel
from engine.detect.detectors import condition_on_totals_numpy  # the numpy form: the peer


@pytest.fixture(scope="module")
def problem():
    from engine.catalog import Catalog

    n_scan = sum(1 for i in Catalog.load().indicators if i.get("cluster_scan"))
    city = City.synthetic(seed=1, neighbourhoods=300)
    zones = build_zones(city.adj_indptr, city.adj_indices, city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy(), 6)
    rng = np.random.default_rng(0)
    W, n = 4, 300
    exp = rng.uniform(0.2, 1.5, size=(n_scan, W, n)).astype(np.float32)
    obs = rng.poisson(exp).astype(np.float32)
    for c in range(0, n_scan, 2):
        obs[c, :, zones[(7 * c) % n, :3]] += 3
    V = np.zeros((n_scan, n))
    return dict(n_scan=n_scan, zones=zones, exp=exp, obs=obs, V=V, W=W, n=n)


def _outputs(n_scan, n):
    """The kernel's score / detector / found outputs and its log table."""
    return (np.zeros((n_scan, n), dtype=np.float32), np.zeros((n_scan, n), dtype=np.int8),
            np.empty((n_scan, MAX_CLUSTERS, 5)), clogc_table())


def _engine(p, replicas=999):
    n_scan, W, n = p["n_scan"], p["W"], p["n"]
    score, det, found, table = _outputs(n_scan, n)
    def go():
        obs, exp = p["obs"].copy(), p["exp"].copy()
        V = obs[:, W - 1].astype(np.float64)           # the newest cycle, pushed again into slot W-1
        mu = exp[:, W - 1].astype(np.float64)
        ring = np.array([W - 1, W - 1], dtype=np.int64)
        scan_update_kernel(V, np.arange(n_scan), mu, obs, exp, ring, p["zones"], replicas, np.uint64(1),
                           np.int64(5), 0.05, score, det, found, table)
        return found
    return go


def test_scan_engine(benchmark, problem):
    p = problem
    engine_bench(benchmark, "scan-300", bytes_touched=int(2 * p["obs"].nbytes + 2 * p["exp"].nbytes),
                 size=f"{p['n_scan']} indicators x 300 regions x {p['W']} windows, 999 replicas")
    found = benchmark(_engine(p))
    assert (found[::2, 0, 1] <= 0.01).all()
    ok = ~np.isnan(found[:, :, 1])
    assert ((found[:, :, 1][ok] > 0) & (found[:, :, 1][ok] <= 1)).all()
    assert (found[1::2, 0, 1] > 0.01).mean() >= 0.8     # the unplanted ones: mostly not significant


def peer_max_llr(obs, exp, zones):
    """Most likely cluster's LLR per indicator, numpy: cumulative windows x zone prefix sums."""
    W = obs.shape[1]
    C = np.cumsum(obs[:, ::-1], axis=1)                # newest first, windows 1..W
    M = np.cumsum(exp[:, ::-1], axis=1)
    valid = zones >= 0
    idx = np.where(valid, zones, 0)
    cz = np.cumsum(C[:, :, idx] * valid, axis=3)        # (n_scan, W, n, K)
    mz = np.cumsum(M[:, :, idx] * valid, axis=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where((cz > mz) & (mz > 0), cz * np.log(cz / mz) - (cz - mz), 0.0)
    llr = np.where(np.cumsum(~valid, axis=1)[None, None] > 0, 0.0, llr)
    return llr.reshape(llr.shape[0], -1).max(axis=1)


def test_scan_numpy_peer(benchmark, problem):
    p = problem
    peer_bench(benchmark, "scan-300", scale=1000.0, size="observed scan only (x1000 for 999 replicas)")
    got = benchmark(peer_max_llr, p["obs"].astype(np.float64), p["exp"].astype(np.float64), p["zones"])
    found = _engine(p, replicas=19)()
    assert_same(found[:, 0, 0], got, rtol=1e-9)


# ----------------------------------------------------------------------------- late in a run

@pytest.fixture(scope="module")
def late():
    """Late in the demo: the 68 count_1h indicators at 15-minute cycles, events 0.02-0.04 an hour
    a region (19-40 in a 4-cycle ring), expectations at the 0.1 count floor; 7 indicators with a
    three-neighbourhood cluster (x5). The ring holds each cycle's count_1h (4 slots)."""
    from engine.catalog import Catalog

    n_scan = sum(1 for i in Catalog.load().indicators if i.get("cluster_scan"))
    n, W, T = 300, 4, 40
    city = City.synthetic(seed=1, neighbourhoods=n)
    zones = build_zones(city.adj_indptr, city.adj_indices, city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy(), 6)
    rng = np.random.default_rng(0)
    rate = rng.uniform(0.02, 0.04, size=n_scan)
    lam = np.repeat(rate[None, :, None] / 4, T, 0) * np.ones((T, n_scan, n))
    for c in range(0, n_scan, 10):
        lam[:, c, zones[(7 * c) % n, :3]] *= 5
    ev = rng.poisson(lam)
    c1h = np.stack([ev[max(0, t - 3):t + 1].sum(axis=0) for t in range(T)]).astype(np.float32)
    mu = np.maximum(np.repeat(rate[:, None], n, 1), 0.1)
    obs = np.ascontiguousarray(c1h[T - 1 - W:T - 1].transpose(1, 0, 2))
    exp = np.broadcast_to(mu[:, None, :], obs.shape).astype(np.float32)
    return dict(n_scan=n_scan, zones=zones, obs=obs, exp=exp, V=c1h[T - 1], mu=mu, W=W, n=n)


def _engine_late(p, stride):
    n_scan, W, n = p["n_scan"], p["W"], p["n"]
    score, det, found, table = _outputs(n_scan, n)

    def go():
        obs, exp = p["obs"].copy(), p["exp"].copy()
        ring = np.array([0, W], dtype=np.int64)
        scan_update_kernel(p["V"], np.arange(n_scan), p["mu"], obs, exp, ring, p["zones"], 999, np.uint64(1),
                           np.int64(5), 0.05, score, det, found, table, stride, stride > 1)
        return found
    return go


def test_scan_late_engine(benchmark, late):
    """The scan as the engine should run it: stride 4 (disjoint hourly counts; with the 4-slot ring
    one window, the last hour) and tail p-values. Counting every cycle's count_1h as disjoint
    (stride 1, what detectors.py passes today) makes chance coincidences significant: measured
    ~17 significant clusters a cycle and ~250 ms one thread against ~12 ms (docs/detect.md, "Scan,
    2026-11-29 (second session)")."""
    p = late
    engine_bench(benchmark, "scan-300-late", bytes_touched=int(2 * p["obs"].nbytes + 2 * p["exp"].nbytes),
                 size=f"{p['n_scan']} count_1h x 300 regions, 4-slot ring, stride 4, 999 replicas")
    found = benchmark(_engine_late(p, 4))
    ok = ~np.isnan(found[:, :, 1])
    assert ((found[:, :, 1][ok] > 0) & (found[:, :, 1][ok] <= 1)).all()


def test_scan_late_numpy_peer(benchmark, late):
    p = late
    peer_bench(benchmark, "scan-300-late", scale=1000.0, size="observed scan of the newest hour (x1000 for 999 replicas)")
    newest = p["V"][:, None, :]                 # the cycle the engine pushes: its one window, the last hour
    got = benchmark(peer_max_llr, newest.astype(np.float64), p["exp"][:, :1].astype(np.float64), p["zones"])
    found = _engine_late(p, 4)()
    have = np.where(np.isnan(found[:, 0, 0]), 0.0, found[:, 0, 0])
    assert_same(have, got, rtol=1e-9)



# ----------------------------------------------------------------------------- the demo's 96-slot ring

@pytest.fixture(scope="module")
def ring96():
    """The demo's scan late in the run (docs/detect.md, "Scan speed, 2026-11-29 (third session,
    late)"): a full 96-slot ring of count_1h at 15-minute cycles (stride 4: 24 disjoint hourly
    counts, 9 cells), scan_alpha 0.001 (one exceedance stops a cluster) and tail p-values. Sparse
    series, expectations spread over the regions like populations (0.005-0.1 events an hour a
    region), two dense ones (~1 an hour a region, most cells with a count), and a
    three-neighbourhood cluster (+2 events an hour a region over the last 4 hours) in every 8th
    indicator."""
    from engine.catalog import Catalog

    n_scan = sum(1 for i in Catalog.load().indicators if i.get("cluster_scan"))
    n, W = 300, 96
    city = City.synthetic(seed=1, neighbourhoods=n)
    zones = build_zones(city.adj_indptr, city.adj_indices, city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy(), 6)
    rng = np.random.default_rng(0)
    share = rng.uniform(0.3, 3.0, size=n)
    share /= share.mean()
    rate = rng.uniform(0.005, 0.1, size=n_scan)
    rate[[1, n_scan // 2]] = 1.0
    exp = np.repeat((rate[:, None] * share[None, :])[:, None, :], W, 1)
    lam = exp.copy()
    for c in range(0, n_scan, 8):
        z = zones[(7 * c) % n, :3]
        for j in range(4):              # the last 4 hourly counts (slots 0, 92, 88, 84 with the newest in slot 0)
            lam[c, (-4 * j) % W, z] += 2.0
    obs = rng.poisson(lam).astype(np.float32)
    V = obs[:, 0].astype(np.float64)    # the newest count, pushed into slot 0 (ring position 0, full)
    mu = exp[:, 0].copy()
    return dict(n_scan=n_scan, zones=zones, obs=obs, exp=exp.astype(np.float32), V=V, mu=mu, W=W, n=n)


def _engine_ring96(p):
    n_scan, n = p["n_scan"], p["n"]
    score, det, found, table = _outputs(n_scan, n)

    def go():
        obs, exp = p["obs"].copy(), p["exp"].copy()
        ring = np.array([0, p["W"]], dtype=np.int64)
        scan_update_kernel(p["V"], np.arange(n_scan), p["mu"], obs, exp, ring, p["zones"], 999, np.uint64(1),
                           np.int64(5), 0.001, score, det, found, table, 4, True)
        return found
    return go


def test_scan_ring96_engine(benchmark, ring96):
    p = ring96
    engine_bench(benchmark, "scan-300-ring96", bytes_touched=int(2 * p["obs"].nbytes + 2 * p["exp"].nbytes),
                 size=f"{p['n_scan']} count_1h x 300 regions, 96-slot ring, stride 4 (9 cells), alpha 0.001, "
                      "999 replicas, screen + sequential stop")
    found = benchmark(_engine_ring96(p))
    ok = ~np.isnan(found[:, :, 1])
    assert ((found[:, :, 1][ok] > 0) & (found[:, :, 1][ok] <= 1)).all()
    assert (found[::8, 0, 1] <= 0.001).mean() >= 0.5      # the planted clusters: mostly found


def _ring96_cells(p):
    """The scan's cells in numpy, oldest first (the layout peer_max_llr reads): the 24 disjoint hourly
    counts (slots 0, 92, 88, ... newest first) summed over the window lengths 1, 2, 3, 4, 6, 8, 12, 16, 24."""
    slots = [(-4 * j) % p["W"] for j in range(24)]
    ends = [1, 2, 3, 4, 6, 8, 12, 16, 24]
    obs = p["obs"].astype(np.float64)
    exp = p["exp"].astype(np.float64)
    co, ce, j0 = [], [], 0
    for j1 in ends:
        co.append(obs[:, slots[j0:j1]].sum(axis=1))
        ce.append(exp[:, slots[j0:j1]].sum(axis=1))
        j0 = j1
    return np.stack(co[::-1], axis=1), np.stack(ce[::-1], axis=1)


def test_scan_ring96_numpy_peer(benchmark, ring96):
    p = ring96
    peer_bench(benchmark, "scan-300-ring96", scale=1000.0, size="observed scan of the 9 cells (x1000 for 999 replicas)")
    co, ce = _ring96_cells(p)
    got = benchmark(peer_max_llr, co, ce, p["zones"])
    found = _engine_ring96(p)()
    have = np.where(np.isnan(found[:, 0, 0]), 0.0, found[:, 0, 0])
    assert_same(have, got, rtol=1e-9)


# ----------------------------------------------------------------------------- the scan's cadence

def _engine_ring96_cadence(p, every=4):
    """Four cycles of the demo's ring (cycle numbers 5-8) at cadence ``every``: with 4 (what
    ``Detectors`` runs for count_1h at 15-minute cycles) cycles 5-7 push their counts and hold, cycle
    8 scans -- with the newest count in slot 0, the cells of :func:`_ring96_cells`."""
    from engine.detect.scan import scan_run_kernel

    n_scan, n, W = p["n_scan"], p["n"], p["W"]
    slots = [(W - 3 + t) % W for t in range(4)]            # 93, 94, 95, 0: the ring's own counts again
    V = np.ascontiguousarray(p["obs"][:, slots].transpose(1, 0, 2))
    mu = np.ascontiguousarray(p["exp"][:, slots].transpose(1, 0, 2).astype(np.float64))
    score = np.zeros((4, n_scan, n), dtype=np.float32)
    det = np.zeros((4, n_scan, n), dtype=np.int8)
    found = np.empty((4, n_scan, MAX_CLUSTERS, 5))
    table = clogc_table()
    cycles = np.arange(5, 9, dtype=np.int64)

    def go():
        obs, exp = p["obs"].copy(), p["exp"].copy()
        ring = np.array([W - 3, W], dtype=np.int64)
        held = np.full((n_scan, MAX_CLUSTERS, 5), np.nan)
        scan_run_kernel(V, np.arange(n_scan), mu, obs, exp, ring, p["zones"], 999, np.uint64(1), cycles, 0.001,
                        score, det, found, table, np.int64(4), np.bool_(True), np.int64(every), held)
        return found
    return go


def test_scan_ring96_cadence4_engine(benchmark, ring96):
    """Four 15-minute cycles of the demo's scan at the strided cadence (one scan, three held cycles):
    the scan's cost a cycle is this / 4 (docs/detect.md, "Scan cadence, 2026-11-29 (fifth session)")."""
    p = ring96
    engine_bench(benchmark, "scan-300-ring96-cadence4", bytes_touched=int(2 * p["obs"].nbytes + 2 * p["exp"].nbytes),
                 size=f"4 cycles: {p['n_scan']} count_1h x 300 regions, 96-slot ring, stride 4, scanned once "
                      "(cadence 4), alpha 0.001, 999 replicas")
    found = benchmark(_engine_ring96_cadence(p))
    assert np.isnan(found[:3]).all()                      # held cycles before any scan: no cluster
    ok = ~np.isnan(found[3, :, :, 1])
    assert ((found[3, :, :, 1][ok] > 0) & (found[3, :, :, 1][ok] <= 1)).all()
    assert (found[3, ::8, 0, 1] <= 0.001).mean() >= 0.5   # the planted clusters: mostly found


def test_scan_ring96_cadence4_numpy_peer(benchmark, ring96):
    p = ring96
    peer_bench(benchmark, "scan-300-ring96-cadence4", scale=1000.0,
               size="4 cycles: the observed scan of the 9 cells once (x1000 for 999 replicas)")
    co, ce = _ring96_cells(p)
    got = benchmark(peer_max_llr, co, ce, p["zones"])
    found = _engine_ring96_cadence(p)()
    have = np.where(np.isnan(found[3, :, 0, 0]), 0.0, found[3, :, 0, 0])
    assert_same(have, got, rtol=1e-9)
    every = _engine_ring96_cadence(p, every=1)()          # today's scan, every cycle (seeded by cycle 8 too)
    np.testing.assert_array_equal(found[3], every[3])      # the scanning cycle: the every-cycle scan's
    assert not np.array_equal(found[:3], every[:3], equal_nan=True)


# ----------------------------------------------------------------------------- conditioning on totals

@pytest.fixture(scope="module")
def part():
    """A detector part's scanned counts as the runner conditions them: 32 cycles x 55 indicators x 300
    regions, float32 counts (sparse: ~0.05 a region and hour), float64 expectations, 3 % missing,
    the regions' populations as the prior."""
    rng = np.random.default_rng(3)
    shape = (32, 55, 300)
    obs = rng.poisson(0.05, shape).astype(np.float32)
    obs[rng.random(shape) < 0.03] = np.nan
    mu = rng.gamma(0.5, 0.1, shape)
    return dict(obs=obs, mu=mu, prior=rng.uniform(500, 15000, 300))


def test_condition_engine(benchmark, part):
    """``condition_on_totals`` (one pass, ``scan.condition_kernel``) on a copy of the part's expectations."""
    from engine.detect.detectors import condition_on_totals

    p = part
    engine_bench(benchmark, "condition-part", bytes_touched=int(p["obs"].nbytes + 3 * p["mu"].nbytes),
                 size="32 cycles x 55 indicators x 300 regions (a copy of mu included)")

    def run():
        mu = p["mu"].copy()
        condition_on_totals(p["obs"], mu, p["prior"], 50.0, 5.0)
        return mu
    got = benchmark(run)
    want = p["mu"].copy()
    condition_on_totals_numpy(p["obs"], want, p["prior"], 50.0, 5.0)
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))     # bit for bit


def test_condition_numpy_peer(benchmark, part):
    p = part
    peer_bench(benchmark, "condition-part", size="the numpy form (a copy of mu included)")

    def run():
        mu = p["mu"].copy()
        condition_on_totals_numpy(p["obs"], mu, p["prior"], 50.0, 5.0)
        return mu
    got = benchmark(run)
    assert np.isfinite(got).any()

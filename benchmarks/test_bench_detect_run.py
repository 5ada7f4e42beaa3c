"""Detectors in a run: one cycle of ``Detectors.update`` with every detector, the full catalog x 300.

What ``cityvitals demo`` runs each cycle (docs/detect.md, "Detectors in a run"): the row pass
(detectors 1-4), the spatial outlier (5) and the space-time scan (6, 999 replicas) over the 68
count indicators the catalog marks ``cluster_scan`` (disjoint hourly counts, 4 hours back,
expectations conditioned on each count's city total), in an epidemic-like count state: the
detectors learned 200 cycles of rare events (0.02 a region and cycle), then
three cycles of 0.025 a cell (~30 counts, as the demo's tickets in the reopening: 19-40 against
~120 expected) with five indicators carrying a planted three-neighbourhood outbreak: every
scanned indicator has clusters to test (most of them chance, p ~ 0.2-1: the floor makes a
single count look unusual) and a handful are significant (all 999 replicas). Each round starts from the same state (restored outside the
timing).

Peer: the scan written plainly in whole-array numpy over all 68 indicators (the observed most
likely cluster and ``PEER_REPLICAS`` replicas that draw every cell and scan every zone,
``scale`` for 999 replicas), without the row and spatial passes: a lower bound of a numpy
cycle. It must find the same most likely clusters (LLR) as the engine's significant ones.

CI size (``--benchmark-disable``, one untimed run): 44 neighbourhoods instead of 300 (44 and 300
agree mod 128: the spatial batch's 8 x 8 transposes over the regions end on the same remainder
of 4), the same 200 learned cycles, rise and planted outbreaks: every assertion runs (the
planted outbreaks found, spatial (5) and scan (6) codes, the peer's LLRs of the engine's
clusters).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench

N_REG = 300
N_REG_CI = 44      # under --benchmark-disable (see above)
LEARN = 200
PEER_REPLICAS = 19


@pytest.fixture(scope="module")
def run_state(ci_size):
    from engine.catalog import Catalog
    from engine.city import City
    from engine.detect import Detectors

    n_reg = N_REG_CI if ci_size else N_REG
    city = City.synthetic(seed=1, neighbourhoods=n_reg)
    # 4 hourly counts back (windows 1-4 h: every prefix, as the peer scans them)
    det = Detectors(Catalog.load(), city, cycle="15min", scan_windows=4)
    rng = np.random.default_rng(0)
    t0 = np.datetime64("2024-03-04T00:15")
    step = np.timedelta64(15, "m")
    n_ind = det.n_ind

    def values(n_t, rate):
        v = (10 + rng.normal(size=(n_t, n_ind, n_reg))).astype(np.float32)
        v[:, det.is_count] = rng.poisson(rate, size=(n_t, int(det.is_count.sum()), n_reg))
        return v

    for a in range(0, LEARN, 25):
        det.learn(values(25, 0.02), t0 + np.arange(a, a + 25) * step)
    # the rise: three cycles into the scan's windows, then the cycle measured
    cycles = values(4, 0.025)
    zones = det.zones
    warm = det.scan_ind[det.season[det.scan_ind] != 2]                 # (weekly ones are still warming up)
    planted = warm[np.linspace(0, len(warm) - 1, 5).astype(int)]
    for k, i in enumerate(planted):
        cycles[1:, i, zones[(37 * k) % n_reg, :3]] += 3
    for t in range(3):
        det.update(cycles[t], t0 + (LEARN + t) * step)
    saved = det.state.copy()
    return dict(det=det, v=cycles[3], time=t0 + (LEARN + 3) * step, saved=saved, planted=planted, n_reg=n_reg)


def _restore(p):
    for name, arr in p["saved"].arrays().items():
        np.copyto(getattr(p["det"].state, name), arr)


def test_detect_run_engine(benchmark, run_state):
    p = run_state
    det = p["det"]
    out = (np.empty((det.n_ind, det.n_reg), np.float32), np.empty((det.n_ind, det.n_reg), np.int8))
    engine_bench(benchmark, "detect-run-300", bytes_touched=int(sum(a.nbytes for a in det.state.arrays().values())),
                 size=f"{det.n_ind} x {det.n_reg} series, spatial + scan over {len(det.scan_ind)} indicators, 999 replicas")
    score, code, extra = benchmark.pedantic(lambda: det.update(p["v"], p["time"], out=out),
                                            setup=lambda: _restore(p), rounds=5, iterations=1)
    hit = {c["indicator_index"] for c in extra["clusters"]}
    assert set(p["planted"].tolist()) <= hit                     # the outbreaks are found
    assert (code == 6).any() and (code == 5).any()


def numpy_scan(obs, exp, zones, replicas, rng):
    """Most likely cluster's LLR per indicator and its Monte Carlo p-value, plainly: every replica
    draws every cell and scans every zone and window. ``obs``/``exp`` (n_scan, fill, n_reg), newest
    first."""
    valid = zones >= 0
    idx = np.where(valid, zones, 0)
    tail = np.cumsum(~valid, axis=1) > 0

    def max_llr(x):
        C = np.cumsum(x, axis=1)
        M = np.cumsum(exp, axis=1)
        cz = np.cumsum(C[:, :, idx] * valid, axis=3)             # (n_scan, fill, n_reg, K)
        mz = np.cumsum(M[:, :, idx] * valid, axis=3)
        with np.errstate(divide="ignore", invalid="ignore"):
            llr = np.where((cz > mz) & (mz > 0), cz * np.log(cz / mz) - (cz - mz), 0.0)
        llr[:, :, tail] = 0.0
        return llr.reshape(llr.shape[0], -1).max(axis=1)

    observed = max_llr(obs)
    exceed = np.zeros(len(observed))
    for _ in range(replicas):
        exceed += max_llr(rng.poisson(exp).astype(np.float64)) >= observed
    return observed, (1 + exceed) / (replicas + 1)


def test_detect_run_numpy_peer(benchmark, run_state):
    p = run_state
    det = p["det"]
    _restore(p)
    st = det.state
    W = st.scan_obs.shape[1]
    pos, fill = int(st.ring[0]), int(st.ring[1])
    # the engine's scan after this cycle, to read the rings it scanned
    score, code, extra = det.update(p["v"], p["time"])
    # the disjoint hourly counts the engine scanned (every `stride`-th slot back), newest first
    stride = det.scan_stride
    order = [(int(st.ring[0]) - 1 - stride * j) % W for j in range((min(fill + 1, W) - 1) // stride + 1)]
    obs = st.scan_obs[:, order].astype(np.float64)
    exp = st.scan_exp[:, order].astype(np.float64)
    _restore(p)
    peer_bench(benchmark, "detect-run-300", scale=(999 + 1) / (PEER_REPLICAS + 1),
               size=f"numpy scan of {len(det.scan_ind)} indicators, {PEER_REPLICAS} replicas (x{1000 // (PEER_REPLICAS + 1)} for 999)")
    got, _ = benchmark(numpy_scan, obs, exp, det.zones, PEER_REPLICAS, np.random.default_rng(1))
    top = {}
    for c in extra["clusters"]:
        s = int(det.scan_slot[c["indicator_index"]])
        top[s] = max(top.get(s, 0.0), c["llr"])
    assert len(top) >= len(p["planted"]) and pos >= 0
    slots = sorted(top)
    assert_same(np.array([top[s] for s in slots]), got[slots], rtol=1e-9)

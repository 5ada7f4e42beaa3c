"""Detector update per cycle: the full catalog x 6,000 neighbourhoods (heavy) and a light size.

Engine: ``Detectors.update`` -> ``engine.detect.kernels.update_kernel`` (detectors 1-5, parallel
over indicators), writing into score / code buffers reused from cycle to cycle (``out=``, as a
cycle loop does; fresh outputs add their first-touch page faults, ``-k fresh``).
Peer: the same model written as whole-array numpy (no count detector tails: the peer is
run on non-count, non-seasonal indicators only, and must give equal scores there).
Bytes touched: values read + 22 B of state read and written per series + score and code.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.detect import Detectors
from engine.detect.seasonal import SIGMA_PER_MAD


def _detectors(n_ind, n_reg, seed=0):
    rng = np.random.default_rng(seed)
    from engine.catalog import Catalog

    inds = Catalog.load().indicators
    pick = [inds[k % len(inds)] for k in range(n_ind)]
    det = Detectors.from_spec(direction=[i["direction"] for i in pick], seasonality=[i["seasonality"] for i in pick],
                              count=[i["aggregation"] == "count" and i["normalisation"] == "none" for i in pick],
                              thresholds=[i.get("thresholds") for i in pick], n_reg=n_reg, cycle="15min",
                              spatial=False, warmup=4)
    V = (10 + rng.normal(size=(8, n_ind, n_reg))).astype(np.float32)
    V[:, det.is_count] = rng.poisson(2.0, size=(8, int(det.is_count.sum()), n_reg))
    t0 = np.datetime64("2024-01-01T00:00")
    for k in range(6):                                  # past the first observations
        det.update(V[k], t0 + k * np.timedelta64(15, "m"))
    return det, V[6], t0 + 6 * np.timedelta64(15, "m")


def _bytes(det):
    n = det.n_ind * det.n_reg
    return int(n * (4 + 2 * det.state.nbytes_per_series() + 4 + 1))


def _engine_step(det, v, time, out=None):
    """One cycle's update; the cycle counter is rewound so every round scores the same cycle."""
    def go():
        det.state.cycle[0] = -1
        return det.update(v, time, out=out)
    return go


def _outputs(det):
    return np.zeros((det.n_ind, det.n_reg), np.float32), np.zeros((det.n_ind, det.n_reg), np.int8)


@pytest.mark.parametrize("size", [pytest.param((2926, 6000), marks=pytest.mark.heavy, id="catalog-x-6000"),
                                  pytest.param((2926, 300), id="catalog-x-300")])
def test_detect_update_engine(benchmark, size):
    det, v, time = _detectors(*size)
    engine_bench(benchmark, f"detect-update-{size[1]}", bytes_touched=_bytes(det), size=f"{size[0]} x {size[1]} series")
    out = benchmark(_engine_step(det, v, time, _outputs(det)))
    assert out[0].shape == size


@pytest.mark.heavy
def test_detect_update_engine_6000_fresh_outputs(benchmark):
    """The same update allocating its outputs every cycle (``out=None``)."""
    det, v, time = _detectors(2926, 6000)
    engine_bench(benchmark, "detect-update-6000-fresh", bytes_touched=_bytes(det), size="2926 x 6000 series")
    out = benchmark(_engine_step(det, v, time))
    assert out[0].shape == (2926, 6000)


def numpy_peer(v, L, D, S, CP, CN, N, warm, par, direction):
    """Seasonal-free, count-free update of the same model in whole-array numpy."""
    sigma = np.maximum(SIGMA_PER_MAD * S, par["floor_spread"] * D + par["floor_level"] * np.abs(L) + 1e-12)
    z = (v - L) / sigma
    q = np.sqrt(4 + z * z)
    tail = 0.5 * (4 / (q * (q + np.abs(z)))) ** 2 * (1 + 0.5 * np.abs(z) / q)
    up = np.where(z > 0, 1 - tail, 0.0)
    down = np.where(z < 0, 1 - tail, 0.0)
    both = 1 - 2 * tail
    s1 = np.where(direction[:, None] == 1, up, np.where(direction[:, None] == -1, down, both))
    zc = np.clip(z, -par["cusum_clip"], par["cusum_clip"])
    cp = np.minimum(np.maximum(0, CP + zc - par["cusum_k"]), par["cusum_cap"])
    cn = np.minimum(np.maximum(0, CN - zc - par["cusum_k"]), par["cusum_cap"])
    k = par["cusum_k"]
    c3 = np.where(direction[:, None] == 1, 1 - np.exp(-2 * k * cp), np.where(
        direction[:, None] == -1, 1 - np.exp(-2 * k * cn), np.maximum(0, 1 - 2 * np.exp(-2 * k * np.maximum(cp, cn)))))
    return np.where(N >= warm, np.maximum(s1, c3), np.nan)


@pytest.mark.parametrize("size", [pytest.param((2926, 6000), marks=pytest.mark.heavy, id="catalog-x-6000"),
                                  pytest.param((2926, 300), id="catalog-x-300")])
def test_detect_update_numpy_peer(benchmark, size):
    det, v, time = _detectors(*size)
    sel = np.flatnonzero(~det.is_count & (det.season == 0) & np.isnan(det.warn))
    st = det.state.copy()
    par = det.params.as_dict()
    args = [v[sel].astype(np.float64)] + [getattr(st, n)[sel].astype(np.float64) for n in
                                          ("level", "spread", "scale", "cusum_pos", "cusum_neg", "nobs")]
    peer_bench(benchmark, f"detect-update-{size[1]}", scale=det.n_ind / len(sel), size=f"{len(sel)} x {size[1]} series")
    ref = benchmark(numpy_peer, *args, det.warmup[sel][:, None], par, det.direction[sel])
    score, _, _ = det.update(v, time)
    # float32 kernel arithmetic: absolute error ~1e-7 on a score (1 - 2 tail cancels near 0)
    assert_same(score[sel].astype(np.float64), ref, rtol=1e-5, atol=1e-6)

"""Detector update per cycle: the full catalog x 6,000 neighbourhoods (heavy) and a light size.

Engine: ``Detectors.update`` -> ``engine.detect.kernels.update_kernel`` (detectors 1-4, parallel
over indicators; built with ``spatial=False`` and no scan, so the spatial outlier (5), which the
catalog's ``Detectors`` runs, is NOT in these figures: docs/STATUS.md, "Detectors in a run"), writing into score / code buffers reused from cycle to cycle (``out=``, as a
cycle loop does; fresh outputs add their first-touch page faults, ``-k fresh``).
Two states: ``catalog-x-6000`` six cycles after a cold start (every series still counts its
observations; the seasonal and most count series are in warm-up, so they skip the count tail),
``steady`` the operating state (every series past its warm-up, learned from 1,400 cycles of a
daily pattern on 16 regions and tiled over the 6,000: every row steady, every count row warm).
Peer: the same model written as whole-array numpy (no count detector tails: the peer is
run on non-count, non-seasonal indicators only, and must give equal scores there).
Bytes touched (``_bytes``, from the layout): values read (4) + score and code written (5) +
the state the kernel reads and writes: level, spread, scale and the bad side's CUSUM (16 B),
the last value's tag (1 B), the observation count (2 B) unless the row is steady, and the
second CUSUM sum of the two-sided rows (4 B): 47 B a series cold, 43 B steady (was 53 B).
Each engine benchmark's ``extra_info`` carries ``bytes_per_series`` and ``floor_36gbs_ms``: those
bytes at :data:`COPY_GBS` (issue 4's fixed floor, the quiet box's parallel copy; the target is within
2x of it), next to conftest's ``floor_s`` / ``floor_ratio`` at the session's measured bandwidth.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.detect import Detectors
from engine.detect.seasonal import SIGMA_PER_MAD


#: parallel copy bandwidth of the 2-core box (GB/s; issue 4): the floor of an update is its bytes at this rate
COPY_GBS = 36.0


def _declare(benchmark, group, det, size):
    """``engine_bench`` with the bytes a series moves and the memory-bandwidth floor in ``extra_info``."""
    nbytes = _bytes(det)
    engine_bench(benchmark, group, bytes_touched=nbytes, size=size)
    benchmark.extra_info["bytes_per_series"] = round(nbytes / (det.n_ind * det.n_reg), 2)
    benchmark.extra_info["floor_36gbs_ms"] = round(nbytes / (COPY_GBS * 1e9) * 1e3, 2)


def _detectors(n_ind, n_reg, seed=0, warm=True):
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
    for k in range(6 if warm else 0):                   # past the first observations
        det.update(V[k], t0 + k * np.timedelta64(15, "m"))
    return det, V[6], t0 + 6 * np.timedelta64(15, "m")


def _bytes(det):
    st = det.state
    per_row = 4 + 5 + 2 * (st.level.itemsize + st.spread.itemsize + st.scale.itemsize + st.cusum.itemsize
                           + st.last_tag.itemsize + np.where(st.steady, 0, st.nobs.itemsize)
                           + np.where(det.both_slot >= 0, 4, 0))
    return int(det.n_reg * per_row.sum())


def _steady_detectors(n_ind, n_reg, seed=0, learn_reg=16, cycles=1400):
    """Detectors in their operating state: learned on ``learn_reg`` regions, tiled to ``n_reg``."""
    det, _, _ = _detectors(n_ind, n_reg, seed, warm=False)
    small, _, _ = _detectors(n_ind, learn_reg, seed, warm=False)
    rng = np.random.default_rng(seed + 1)
    t0 = np.datetime64("2024-01-01T00:00")
    step = np.timedelta64(15, "m")

    def values(t, n_reg_):
        day = 1 + 0.3 * np.sin(2 * np.pi * (t % 96) / 96)[:, None, None] * (small.season > 0)[None, :, None]
        v = (10 * day + rng.normal(size=(len(t), n_ind, n_reg_))).astype(np.float32)
        v[:, small.is_count] = rng.poisson(2.0 * day[:, small.is_count], size=(len(t), int(small.is_count.sum()), n_reg_))
        return v

    for a in range(0, cycles, 100):
        t = np.arange(a, min(a + 100, cycles))
        small.learn(values(t, learn_reg), t0 + t * step)
    reps = -(-n_reg // learn_reg)
    for name, arr in small.state.arrays().items():
        mine = getattr(det.state, name)
        if arr.ndim >= 2 and arr.shape[-1] == learn_reg and mine.shape[-1] == n_reg:
            mine[...] = np.tile(arr, (1,) * (arr.ndim - 1) + (reps,))[..., :n_reg]
        else:
            mine[...] = arr
    assert det.state.steady.all()
    return det, values(np.array([cycles]), n_reg)[0], t0 + cycles * step


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
    _declare(benchmark, f"detect-update-{size[1]}", det, f"{size[0]} x {size[1]} series")
    out = benchmark(_engine_step(det, v, time, _outputs(det)))
    assert out[0].shape == size


@pytest.mark.heavy
def test_detect_update_engine_6000_steady(benchmark):
    """The operating state: every series past its warm-up (no count kept, every count tail run)."""
    det, v, time = _steady_detectors(2926, 6000)
    _declare(benchmark, "detect-update-6000-steady", det, "2926 x 6000 series")
    out = benchmark(_engine_step(det, v, time, _outputs(det)))
    assert out[0].shape == (2926, 6000) and np.isfinite(out[0]).all()


@pytest.mark.heavy
def test_detect_update_engine_6000_fresh_outputs(benchmark):
    """The same update allocating its outputs every cycle (``out=None``)."""
    det, v, time = _detectors(2926, 6000)
    _declare(benchmark, "detect-update-6000-fresh", det, "2926 x 6000 series")
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
    # both CUSUM sums as the peer keeps them: the engine keeps the bad side's (and C- of two-sided rows)
    down = (det.direction == -1)[:, None]
    cp = np.where(down, 0.0, st.cusum)
    cn = np.where(down, st.cusum, 0.0)
    two = det.both_slot >= 0
    cn[two] = st.cusum_neg[det.both_slot[two]]
    args = [v[sel].astype(np.float64)] + [a[sel].astype(np.float64) for a in
                                          (st.level, st.spread, st.scale, cp, cn, st.nobs)]
    peer_bench(benchmark, f"detect-update-{size[1]}", scale=det.n_ind / len(sel), size=f"{len(sel)} x {size[1]} series")
    ref = benchmark(numpy_peer, *args, det.warmup[sel][:, None], par, det.direction[sel])
    score, _, _ = det.update(v, time)
    # float32 kernel arithmetic: absolute error ~1e-7 on a score (1 - 2 tail cancels near 0); the
    # CUSUM's tail is 2**t by a polynomial of relative error <= 2.9e-6 (kernels.exp2_cusum32, the
    # engine's definition) where the peer takes numpy's exp: <= 5.8e-6 on a score (1 - 2 tail)
    assert_same(score[sel].astype(np.float64), ref, rtol=1e-5, atol=6e-6)

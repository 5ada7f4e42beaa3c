"""Detectors over a part of a scenario run: 48 cycles of the full catalog x 300 neighbourhoods.

What ``cityvitals demo`` asks of the detectors for each half day (``engine.scenario.runner``,
``_detect_part``, hourly storage): every cycle's scores and codes and the baselines (expected,
scale) of each hour's last cycle. Rows (detectors 1-4) and the spatial outlier (5); no scan
(its own groups: ``test_bench_detect_run.py``, ``test_bench_scan.py``). State: 400 cycles of a
daily pattern learned (every series warm), restored before each round.

CI size (``--benchmark-disable``, one untimed run): 44 neighbourhoods instead of 300, the same
400 learned cycles (whole days of the daily bins: the seasonal rows as warm as at 300), 48
cycles, baselines every 4. 44 and 300 agree mod 128: the spatial batch's 8 x 8 transposes over
the regions (``spatial_lanes_in`` / ``_out``) end on the same remainder of 4. Every assertion
runs: both ways' bits equal, the peer's first cycle. Checked: the same detector codes fire at
both sizes, in about the same shares (docs/testing.md, eleventh session).

* ``detect-part-300`` -- the runner since 2026-11-29 (third session): one ``Detectors.run``
  call for the part, ``baseline_every=4``, into output buffers kept from part to part
  (``out=``).
* ``detect-part-300-hourly`` -- the runner before: per hour a call for three cycles and one
  for the hour's last with its baselines, fresh outputs copied into the part's arrays.

Peer (both groups): the same model's non-count, non-seasonal rows in whole-array numpy, cycle
by cycle: t(4) tail, CUSUM, learning of level / scale, and the spatial contrast (neighbour
sums by ``np.add.reduceat``), ``scale`` = the catalog's rows over the rows it runs. It must give
the engine's scores on those rows at the first cycle (but where a value's 8-bit tag collides
with the last one's: a held repeat to the engine); later cycles drift apart (the peer learns
no spread and holds no repeat).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.detect.seasonal import SIGMA_PER_MAD

N_REG = 300
N_REG_CI = 44      # under --benchmark-disable (see above)
N_T = 48
EVERY = 4


@pytest.fixture(scope="module")
def part_state(ci_size):
    from engine.catalog import Catalog
    from engine.city import City
    from engine.detect import Detectors

    n_reg = N_REG_CI if ci_size else N_REG
    city = City.synthetic(seed=1, neighbourhoods=n_reg)
    inds = Catalog.load().indicators
    det = Detectors.from_spec(direction=[i["direction"] for i in inds], seasonality=[i["seasonality"] for i in inds],
                              count=[i["aggregation"] == "count" and i["normalisation"] == "none" for i in inds],
                              thresholds=[i.get("thresholds") for i in inds], n_reg=n_reg, cycle="15min",
                              adjacency=(city.adj_indptr, city.adj_indices), warmup_cycles=96, city_rules=True)
    rng = np.random.default_rng(0)
    t0 = np.datetime64("2024-03-04T00:00")
    step = np.timedelta64(15, "m")

    def values(t):
        day = 1 + 0.3 * np.sin(2 * np.pi * (t % 96) / 96)[:, None, None] * (det.season > 0)[None, :, None]
        v = (10 * day + rng.normal(size=(len(t), det.n_ind, n_reg))).astype(np.float32)
        v[:, det.is_count] = rng.poisson(2.0 * day[:, det.is_count], size=(len(t), int(det.is_count.sum()), n_reg))
        v[rng.random(v.shape) < 0.3] = np.nan                     # a third missing, as in the demo
        return v

    learn = 400
    for a in range(0, learn, 50):
        t = np.arange(a, a + 50)
        det.learn(values(t), t0 + t * step)
    t = np.arange(learn, learn + N_T)
    return dict(det=det, V=values(t), times=t0 + t * step, saved=det.state.copy(), n_reg=n_reg)


def _restore(p):
    for name, arr in p["saved"].arrays().items():
        np.copyto(getattr(p["det"].state, name), arr)


def _one_call(p, buf):
    det = p["det"]
    det.run(p["V"], p["times"], baseline=True, baseline_every=EVERY, out=buf)
    return buf


def _hourly_calls(p):
    """The runner's calls before 2026-11-29 (third session), for the comparison."""
    det, V, times = p["det"], p["V"], p["times"]
    scores = np.empty(V.shape, np.float32)
    dets = np.empty(V.shape, np.int8)
    expected = np.empty((N_T // EVERY,) + V.shape[1:], np.float32)
    scale = np.empty_like(expected)
    for j in range(N_T // EVERY):
        a, z = j * EVERY, (j + 1) * EVERY - 1
        scores[a:z], dets[a:z] = det.run(V[a:z], times[a:z])
        s, dt, extra = det.run(V[z:z + 1], times[z:z + 1], baseline=True, extra=True)
        scores[z], dets[z], expected[j], scale[j] = s[0], dt[0], extra["expected"][0], extra["scale"][0]
    return scores, dets, expected, scale


def _bytes(det):
    st = det.state
    per_step = det.n_reg * det.n_ind * (4 + 1)                     # scores and codes written
    state = sum(getattr(st, k).nbytes for k in ("level", "spread", "scale", "cusum", "last_tag"))
    return int(N_T * (per_step + det.n_reg * det.n_ind * 4) + 2 * state + 2 * (N_T // EVERY) * per_step * 4 // 5)


@pytest.mark.parametrize("calls", ["one-call", "hourly"])
def test_detect_part_engine(benchmark, part_state, calls):
    p = part_state
    det = p["det"]
    group = "detect-part-300" if calls == "one-call" else "detect-part-300-hourly"
    engine_bench(benchmark, group, bytes_touched=_bytes(det),
                 size=f"{N_T} cycles x {det.n_ind} x {p['n_reg']} series, spatial, baselines every {EVERY}")
    if calls == "one-call":
        shape = p["V"].shape
        buf = (np.empty(shape, np.float32), np.empty(shape, np.int8),
               np.empty((N_T // EVERY,) + shape[1:], np.float32), np.empty((N_T // EVERY,) + shape[1:], np.float32))
        fn = lambda: _one_call(p, buf)                              # noqa: E731
    else:
        fn = lambda: _hourly_calls(p)                               # noqa: E731
    out = benchmark.pedantic(fn, setup=lambda: _restore(p), rounds=5, iterations=1)
    _restore(p)
    ref = _hourly_calls(p)
    for got, want in zip(out, ref):                                # both ways give the same bits
        np.testing.assert_array_equal(np.asarray(got).view(np.uint8), want.view(np.uint8))


def numpy_part(V, L, D, S, CP, CN, direction, span, par, indptr, indices):
    """The peer: ``V`` (n_t, n_rows, n_reg) of non-count, non-seasonal rows, float64 state
    (level ``L``, spread ``D``, scale ``S``, CUSUM sums; ``span``: each row's window in cycles),
    whole-array numpy cycle by cycle; returns the scores."""
    L, S, CP, CN = L.copy(), S.copy(), CP.copy(), CN.copy()
    nb_start = indptr[:-1]
    has_nb = np.diff(indptr) > 0
    k = par["cusum_k"]
    two_k = (2 * k / span)[:, None]
    out = np.empty(V.shape)
    up = (direction == 1)[:, None]
    down = (direction == -1)[:, None]
    for t in range(V.shape[0]):
        x = V[t]
        ok = np.isfinite(x)
        sigma = np.maximum(SIGMA_PER_MAD * S, par["floor_spread"] * D + par["floor_level"] * np.abs(L) + 1e-12)
        z = (x - L) / sigma
        a = np.abs(z)
        q = np.sqrt(4 + a * a)
        tail = 0.5 * (4 / (q * (q + a))) ** 2 * (1 + 0.5 * a / q)
        s1 = np.where(up, np.where(z > 0, 1 - tail, 0.0), np.where(down, np.where(z < 0, 1 - tail, 0.0), 1 - 2 * tail))
        zc = np.clip(z, -par["cusum_clip"], par["cusum_clip"])
        CP = np.where(ok, np.minimum(np.maximum(0, CP + zc - k), par["cusum_cap"]), CP)
        CN = np.where(ok, np.minimum(np.maximum(0, CN - zc - k), par["cusum_cap"]), CN)
        c3 = np.where(up, 1 - np.exp(-two_k * CP), np.where(down, 1 - np.exp(-two_k * CN),
                                                           np.maximum(0, 1 - 2 * np.exp(-two_k * np.maximum(CP, CN)))))
        score = np.where(ok, np.maximum(s1, c3), np.nan)
        # spatial contrast against the neighbours with data (clipped at 6)
        zs = np.where(ok, np.clip(z, -6, 6), 0.0)
        w = ok.astype(np.float64)
        acc = np.add.reduceat(zs[:, indices], nb_start, axis=1) * has_nb
        m = np.add.reduceat(w[:, indices], nb_start, axis=1) * has_nb
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (zs - acc / m) / np.sqrt(1 + 1 / m)
        ad = np.abs(d)
        qd = np.sqrt(4 + ad * ad)
        td = 0.5 * (4 / (qd * (qd + ad))) ** 2 * (1 + 0.5 * ad / qd)
        s5 = np.where(up, np.where(d > 0, 1 - td, 0.0), np.where(down, np.where(d < 0, 1 - td, 0.0), 1 - 2 * td))
        out[t] = np.where(ok & (m >= par["spatial_min_neighbours"]), np.maximum(score, s5), score)
        # learning: level and scale
        res = np.clip(x - L, -par["huber"] * sigma, par["huber"] * sigma)
        L = np.where(ok, L + par["level_rate"] * res, L)
        S = np.where(ok, S + par["scale_rate"] * (np.abs(res) - S), S)
    return out


def test_detect_part_numpy_peer(benchmark, part_state):
    p = part_state
    det = p["det"]
    _restore(p)
    sel = np.flatnonzero(~det.is_count & (det.season == 0) & np.isnan(det.warn))
    st = det.state
    down = (det.direction == -1)[:, None]
    cp = np.where(down, 0.0, st.cusum)
    cn = np.where(down, st.cusum, 0.0)
    two = det.both_slot >= 0
    cn[two] = st.cusum_neg[det.both_slot[two]]
    args = (p["V"][:, sel].astype(np.float64), st.level[sel].astype(np.float64), st.spread[sel].astype(np.float64),
            st.scale[sel].astype(np.float64), cp[sel].astype(np.float64), cn[sel].astype(np.float64),
            det.direction[sel], det.span[sel].astype(np.float64), det.params.as_dict(), det.adj_ptr, det.adj_idx)
    peer_bench(benchmark, "detect-part-300", scale=det.n_ind / len(sel),
               size=f"{N_T} cycles x {len(sel)} x {p['n_reg']} series (non-count, non-seasonal rows)")
    ref = benchmark.pedantic(numpy_part, args=args, rounds=3, iterations=1)
    score, _ = det.run(p["V"][:1], p["times"][:1])
    _restore(p)
    # the first cycle's scores (no threshold rows; float32 kernel arithmetic), but where the value's
    # 8-bit tag equals the last one's: the engine takes it for a held repeat (kernels.value_tag)
    b = p["V"][0][sel].view(np.int32)
    tag = (b ^ (b >> 8) ^ (b >> 16) ^ (b >> 24)) & 0xFF
    held = tag == st.last_tag[sel]
    got = score[0][sel].astype(np.float64)
    assert held.mean() < 0.01
    assert_same(np.where(held, np.nan, got), np.where(held, np.nan, ref[0]), rtol=1e-5, atol=1e-5)

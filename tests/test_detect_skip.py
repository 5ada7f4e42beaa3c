"""The row pass's skip (:func:`engine.detect.kernels.run_kernel`): a row-cycle that repeats a cycle which
learned nothing (every value missing or a held repeat, the same values, the same profile bins, the same
steady flag) is a copy of it. Bit for bit: :meth:`Detectors.run` in parts (with the skip) against
:meth:`Detectors.update` cycle by cycle (``update_kernel``: no skip; it equals the reference,
``tests/test_detect_kernels.py``), every output and every state array, on inputs shaped as the demo's feeds
(rows posting every few cycles and held between posts, missing runs, zeros, bin changes, warm-up, steady
rows, two-sided, count and scanned rows, the weekly fallback), and the two row tests against their plain
definitions (the held-repeat test against the reference's ``value_tag``)."""

from __future__ import annotations

import numpy as np
import pytest

import detect_reference as ref
from engine.detect import Detectors
from engine.detect.kernels import _quiet_row, _same_values, value_tag


def _bits(a):
    return a.view(np.uint32) if a.dtype == np.float32 else a


def _detectors(rng, n_ind, n_reg, fast, fallback, rules=True):
    indptr = [0]
    indices = []
    for r in range(n_reg):  # a ring of regions plus a chord
        nb = sorted({(r - 1) % n_reg, (r + 1) % n_reg} | ({(r + 3) % n_reg} if r % 2 else set()))
        indices += nb
        indptr.append(len(indices))
    dirs = ["both", "up_bad", "down_bad"] + rng.choice(["up_bad", "down_bad", "both"], n_ind - 3).tolist()
    seas = ["daily", "weekly", "none"] + rng.choice(["none", "daily", "weekly"], n_ind - 3).tolist()
    cnt = [False, False, True, True] + (rng.random(n_ind - 4) < 0.3).tolist()
    thr = [({"warn": 12.0, "alarm": 14.0} if k % 3 == 0 else None) for k in range(n_ind)]
    clu = [c and k < 5 for k, c in enumerate(cnt)]
    cfg = {"level_rate": 0.2, "spread_rate": 0.25, "scale_rate": 0.3} if fast else {}
    det = Detectors.from_spec(direction=dirs, seasonality=seas, count=cnt, thresholds=thr, cluster=clu,
                              n_reg=n_reg, adjacency=(np.array(indptr), np.array(indices)),
                              xy=(np.arange(n_reg, dtype=float), np.zeros(n_reg)), cycle="15min",
                              phase_minutes=60, spatial=True, warmup_cycles=8, city_rules=rules,
                              weekly_fallback=fallback, scan_replicas=19, **cfg)
    if rules:   # held repeats: 1 non-zero ones (rates), 2 any; without the rules none (0)
        det.hold_mode[:] = rng.choice([1, 2], n_ind).astype(np.uint8)
    return det


def _feeds(rng, det, n_t):
    """Values as the demo's feeds give them: each row posts every ``c`` cycles and is held (repeated
    exactly) between posts, a few regions post on their own, runs of missing rows and regions, zeros."""
    n_ind, n_reg = det.n_ind, det.n_reg
    cad = rng.choice([1, 2, 4, 8, 40], n_ind)
    off = rng.integers(0, 40, n_ind)
    V = np.empty((n_t, n_ind, n_reg), dtype=np.float32)
    prev = np.full((n_ind, n_reg), np.nan, dtype=np.float32)
    gone = np.zeros((n_ind, n_reg), dtype=bool)       # a region's missing run
    for t in range(n_t):
        base = 10 + 2 * np.sin(2 * np.pi * t / 96)
        v = (base + rng.standard_t(3, size=(n_ind, n_reg))).astype(np.float32)
        v[det.is_count] = rng.poisson(max(base / 5, 0.1), size=(int(det.is_count.sum()), n_reg))
        zeros = rng.random(v.shape) < 0.1
        v[zeros & (np.arange(n_ind) % 2 == 0)[:, None]] = 0.0
        v[rng.random(v.shape) < 0.02] += 15
        fresh = ((t + off) % cad == 0)[:, None] | (rng.random(v.shape) < 0.01)
        v = np.where(fresh, v, prev)
        gone = np.where(gone, rng.random(gone.shape) < 0.85, rng.random(gone.shape) < 0.01)
        v[gone] = np.nan
        if t % 60 < 12:                                  # a row's feed down for 12 cycles
            v[(t // 60) % n_ind] = np.nan
        V[t] = v
        prev = np.where(np.isnan(v) & ~gone, prev, v)
    return V


@pytest.mark.parametrize("seed, fast, fallback, rules", [(0, False, True, True), (1, True, True, True),
                                                        (2, False, False, True), (3, True, False, True),
                                                        (4, False, False, False), (5, True, False, False)])
def test_run_with_skip_equals_successive_updates(seed, fast, fallback, rules):
    rng = np.random.default_rng(seed)
    n_ind, n_reg, n_t = 14, 9, 260
    a = _detectors(np.random.default_rng(seed), n_ind, n_reg, fast, fallback, rules)
    b = _detectors(np.random.default_rng(seed), n_ind, n_reg, fast, fallback, rules)
    assert (a.hold_mode == b.hold_mode).all()
    V = _feeds(rng, a, n_t)
    # from a Friday evening: the weekend's bins, then Monday's never visited (not scored, learned)
    times = np.datetime64("2024-03-08T18:00") + np.arange(n_t) * np.timedelta64(15, "m")
    cuts = np.unique(np.concatenate([[0, n_t], rng.integers(1, n_t, 9), [1, 2]]))
    s_run, d_run, e_run, k_run = [], [], {}, {}
    for p0, p1 in zip(cuts[:-1], cuts[1:]):
        every = int(rng.integers(1, 4))
        s, d, ex = a.run(V[p0:p1], times[p0:p1], baseline=True, baseline_every=every, extra=True)
        s_run.append(s)
        d_run.append(d)
        for j in range(ex["expected"].shape[0]):
            e_run[p0 + (j + 1) * every - 1] = ex["expected"][j]
            k_run[p0 + (j + 1) * every - 1] = ex["scale"][j]
    s_run = np.concatenate(s_run)
    d_run = np.concatenate(d_run)
    for t in range(n_t):
        score, code, ex = b.update(V[t], times[t], baseline=True)
        np.testing.assert_array_equal(_bits(s_run[t]), _bits(score), err_msg=f"cycle {t}")
        np.testing.assert_array_equal(d_run[t], code, err_msg=f"cycle {t}")
        if t in e_run:
            np.testing.assert_array_equal(_bits(e_run[t]), _bits(ex["expected"]))
            np.testing.assert_array_equal(_bits(k_run[t]), _bits(ex["scale"]))
    assert a.state.equals(b.state)
    for k, x in a.state.arrays().items():                # bit for bit, NaN payloads included
        y = b.state.arrays()[k]
        np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8), err_msg=k)
    assert a.state.steady.any() or not fast           # steady rows (counts frozen) within the run
    # the inputs exercise the skip: many row-cycles repeat the previous cycle in the same bin
    same = np.array([[_same_values(V[t, i], V[t - 1, i]) for i in range(n_ind)] for t in range(1, n_t)])
    assert same.mean() > 0.3


def _quiet_plain(x, N, sty, nsat, T, hold_mode, is_count):
    for r in range(len(x)):
        xv = np.float32(x[r])
        if np.isnan(xv):
            continue
        n = nsat if sty else int(N[r])
        rep = (hold_mode > 0 and not is_count and n != 0 and (xv != 0 or hold_mode == 2)
               and ref.value_tag(xv) == T[r])
        if not rep:
            return False
    return True


def test_quiet_row_and_same_values_equal_their_plain_definitions():
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, 40))
        x = rng.choice(np.array([np.nan, 0.0, -0.0, 1.5, 2.25, -3.0], dtype=np.float32), n)
        if rng.random() < 0.25:     # every value missing, or all but one (either end: the early return)
            k = int(rng.integers(0, n))
            x[:] = np.nan
            if rng.random() < 0.5:
                x[[0, n - 1][k % 2]] = rng.choice(np.array([0.0, -0.0, 1.5], dtype=np.float32))
        N = rng.choice(np.array([0, 1, 5], dtype=np.int16), n, p=[0.05, 0.15, 0.8])
        T = np.array([value_tag(v) for v in x], dtype=np.uint8)
        flip = rng.random(n) < 3.0 / n
        T[flip] = rng.integers(0, 256, int(flip.sum()))
        sty, is_count = bool(rng.random() < 0.3), bool(rng.random() < 0.2)
        nsat, hold = int(rng.choice([0, 9])), np.uint8(rng.integers(0, 3))
        assert _quiet_row(x, N, sty, nsat, T, hold, is_count) == _quiet_plain(x, N, sty, nsat, T, hold, is_count)
        y = x.copy()
        k = int(rng.integers(0, n))
        y[k] = rng.choice(np.array([np.nan, 0.0, -0.0, 1.5], dtype=np.float32))
        plain = all((np.isnan(u) and np.isnan(w)) or (u.tobytes() == w.tobytes()) for u, w in zip(x, y))
        assert _same_values(x, y) == plain

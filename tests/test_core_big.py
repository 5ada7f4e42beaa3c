"""The threaded driver for big cities (``Engine._run_threads``, ``CITYVITALS_CORE_PARALLEL=1``):
the derived rows split by column ranges (``kernels.derived_cols``) and the step's output arrays
written again once the caller dropped them (``Engine._step_spare``)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from engine import Catalog, City
from engine.core import Engine, Records
from engine.core import kernels as K

from core_reference import random_steps

C = 900 * 10**9
K0 = 1580515200000000000 // C


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=3, neighbourhoods=37, streets=2, population=120_000)


def test_derived_columns_equal_derived_rows(catalog):
    """kernels.derived_cols over any cover of the regions by column ranges == kernels.derived_rows
    bit for bit (float32 and float64 outputs, ``D`` and the output), on the bundled catalog's
    formulas with NaN, zeros, negatives and infinities among the inputs."""
    from engine.core.derived import DerivedPlan

    rng = np.random.default_rng(20)
    dp = DerivedPlan(catalog.indicators)
    *DP, depth = dp.program()
    DP = tuple(DP)
    nreg = 53
    V = rng.normal(0, 5, (len(catalog.indicators), nreg)).round(1)
    V[rng.random(V.shape) < 0.15] = np.nan
    V[rng.random(V.shape) < 0.15] = 0.0
    V[rng.random(V.shape) < 0.02] = np.inf
    D0 = np.ascontiguousarray(V[dp.compact_rows][None])
    for wide in (False, True):
        want_D = D0.copy()
        want = np.full((1, len(V), nreg), -1.0, np.float64 if wide else np.float32)
        O = (np.zeros((1, 1, nreg), np.float32), want) if wide else (want, np.zeros((0, 1, 1)))
        K.derived_rows(0, DP, O, want_D, np.empty((depth, nreg)))
        for cuts in ([0, nreg], [0, 16, nreg], [0, 1, 2, 30, 31, nreg], list(range(nreg + 1))):
            got_D = D0.copy()
            got = np.full_like(want, -1.0)
            O = (np.zeros((1, 1, nreg), np.float32), got) if wide else (got, np.zeros((0, 1, 1)))
            stack = np.full((depth, nreg), 7.0)
            for r0, r1 in zip(cuts[:-1], cuts[1:]):
                K.derived_cols(0, DP, O, got_D, stack, r0, r1)
            assert np.array_equal(got, want, equal_nan=True)
            assert np.array_equal(got_D, want_D, equal_nan=True)
        # one range alone writes only its columns
        got = np.full_like(want, -1.0)
        O = (np.zeros((1, 1, nreg), np.float32), got) if wide else (got, np.zeros((0, 1, 1)))
        K.derived_cols(0, DP, O, D0.copy(), np.empty((depth, nreg)), 16, 32)
        assert (got[0][:, :16] == -1).all() and (got[0][:, 32:] == -1).all()
        assert np.array_equal(got[0, dp.rows, 16:32], want[0, dp.rows, 16:32], equal_nan=True)


def test_derived_cuts_cover_the_regions(city, catalog):
    eng = Engine(city, catalog)
    for parts in (1, 2, 3, 4, 8, 100):
        cuts = eng._derived_cuts(parts)
        assert cuts[0][0] == 0 and cuts[-1][1] == city.n_regions
        assert all(a < b for a, b in cuts) and all(b == c for (_, b), (c, _) in zip(cuts[:-1], cuts[1:]))
        assert all(a % 16 == 0 for a, _ in cuts)


def test_threaded_steps_equal_serial_and_reuse_only_dropped_outputs(city, catalog, monkeypatch):
    """Steps on the threaded driver equal the serial driver's bit for bit (values and end state),
    whether the caller keeps each step's Dataset or drops it; the outputs of dropped steps are
    written again (the same arrays come back), and a Dataset the caller still holds (or a view of
    its values) never changes."""
    steps = random_steps(city, catalog, K0, 12, seed=21)
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "0")
    ser = Engine(city, catalog)
    want = [ser.step(rec, at=k * C).value.values.copy() for k, rec in steps]
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "1")

    # kept: every Dataset (and a bare view of one) held to the end
    eng = Engine(city, catalog)
    kept, views = [], []
    for i, (k, rec) in enumerate(steps):
        ds = eng.step(rec, at=k * C)
        if i % 2:
            kept.append(ds)
        else:
            views.append(ds.value.values[3:5])
        del ds
    gc.collect()
    got = [None] * len(steps)
    got[1::2] = [d.value.values for d in kept]
    for i, v in zip(range(0, len(steps), 2), views):
        assert np.array_equal(v, want[i][3:5], equal_nan=True)
    for i in range(1, len(steps), 2):
        assert np.array_equal(got[i], want[i], equal_nan=True)
    assert eng.state.equals(ser.state)

    # dropped: the usual ``ds = eng.step(...)`` loop (the previous Dataset alive during the call)
    eng2 = Engine(city, catalog)
    seen, ds = [], None
    for i, (k, rec) in enumerate(steps):
        ds = eng2.step(rec, at=k * C)
        arr = ds.value.values
        seen.append(id(arr.base))
        assert np.array_equal(arr, want[i], equal_nan=True)
        if i >= 2:  # the step before last's array, written again
            assert arr.base is not None and id(arr.base) == seen[i - 2]
        del arr
    assert eng2.state.equals(ser.state)
    # a held Dataset stays as it was while later steps run
    held = ds
    snap = held.value.values.copy()
    k = steps[-1][0]
    for j in range(1, 4):
        ds = eng2.step(Records.build(eng2.plan.feed_ids), at=(k + j) * C)
    assert np.array_equal(held.value.values, snap, equal_nan=True)


def test_serial_and_coarse_steps_keep_no_spare(city, catalog, monkeypatch):
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "0")
    steps = random_steps(city, catalog, K0, 3, seed=22)
    eng = Engine(city, catalog)
    for k, rec in steps:
        ds = eng.step(rec, at=k * C)
    assert not getattr(eng, "_step_outs", [])
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "1")
    eng = Engine(city, catalog)
    for k, rec in steps:
        ds = eng.step(rec, at=k * C, level="district")
    assert not eng._step_outs and ds.value.shape[0] == len(catalog)


@pytest.mark.parametrize("replay", [False, True])
def test_threaded_binning_split_equals_serial(city, catalog, monkeypatch, replay):
    """The threaded driver's binning split by bases over the threads (``kernels.bin_part``, each
    thread its own ``cmax``, the snapshot records on the first: ``Engine._bin_masks``) gives the
    serial driver's values and end state bit for bit, late records included (running sums,
    extremes and sorted windows of earlier buckets), in steps and in a replay."""
    import numba

    import engine.core.engine as E

    if numba.get_num_threads() < 2:
        pytest.skip("needs two numba threads")
    steps = random_steps(city, catalog, K0, 10, seed=23, n_ev=400, n_rd=300, n_sn=200, late_frac=0.4)
    # one cycle with a reading repeated 60 times (its ring cells hold the largest count: ``cmax``
    # comes from the share holding its bases, first or not, as the shares' order is reversed below)
    k3, r3 = steps[3]
    rep = np.r_[np.zeros(60, np.int64), np.arange(len(r3.rd_time))]
    steps[3] = (k3, r3.select(rd=rep))
    monkeypatch.setattr(E, "BIN_SPLIT_MIN", 1)  # (the test's cycles are small: split every one)
    monkeypatch.setattr(E, "SHARE_RECORDS_MIN", 1)
    calls = []
    bin_part = K.bin_part
    monkeypatch.setattr(K, "bin_part", lambda *a: (calls.append(a[-2].sum()), bin_part(*a))[1])
    if replay:
        from dataclasses import fields

        recs = [r for _, r in steps]
        allrec = Records(feed_ids=recs[0].feed_ids, **{f.name: np.concatenate([getattr(r, f.name) for r in recs])
                                                       for f in fields(Records) if f.name != "feed_ids"})
    bin_masks = Engine._bin_masks

    def run(mode, reverse=False):
        monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", mode)
        monkeypatch.setattr(Engine, "_bin_masks", lambda *a: (lambda m: m and m[::-1] if reverse else m)(
            bin_masks(*a)))
        eng = Engine(city, catalog)
        if replay:
            return eng, [eng.replay(allrec, steps[0][0] * C, steps[-1][0] * C).value.values.copy()]
        return eng, [eng.step(rec, at=k * C).value.values.copy() for k, rec in steps]

    ser, want = run("0")
    assert int(ser.state.cmax[0]) >= 60
    for reverse in (False, True):
        calls.clear()
        thr, got = run("1", reverse)
        masks = thr._bmasks
        assert len(masks) >= 2 and all(m.any() for m in masks)
        assert (np.sum(masks, axis=0) == 1).all()  # disjoint, every base
        assert sum(calls) >= len(steps) * thr.plan.n_bases  # every cycle binned by every share
        for a, b in zip(got, want):
            assert np.array_equal(a, b, equal_nan=True)
        assert int(thr.state.cmax[0]) == int(ser.state.cmax[0])
        assert thr.state.equals(ser.state)


def test_cycle_bytes_counts_the_load(city, catalog):
    """Plan.cycle_bytes: 24 B an event or reading, 52 B a snapshot record plus 16 B for each
    member of a series expected to be aggregated again (``members_reread``: none without
    snapshot records, every member when every cell changes, ``sum m (1 - (1 - q) ** m)``)."""
    eng = Engine(city, catalog)
    p = eng.plan
    m = np.diff(p.ser_mptr)
    m = m[m > 0]
    assert p.members_reread(0) == 0
    assert p.members_reread(p.snap_size) == len(p.mem_cell)
    for q in (0.01, 0.3):
        want = sum(float(x) * (1.0 - (1.0 - q) ** int(x)) for x in m)
        assert abs(p.members_reread(q * p.snap_size) - want) <= 1e-9 * want
    base = p.cycle_bytes(records=0, snap_records=0)
    assert p.cycle_bytes(records=1000, snap_records=0) - base == 24_000
    sr = 50.0
    assert abs(p.cycle_bytes(records=0, snap_records=sr) - base - 52 * sr - 16 * p.members_reread(sr)) <= 1
    assert p.cycle_bytes() == p.cycle_bytes(snap_records=0.02 * p.snap_nent.sum())
    assert base > 4 * len(catalog) * city.n_regions


@pytest.mark.parametrize("nt", [1, 2, 3])
def test_guided_pieces_partition_heaviest_first(nt):
    """``Engine._guided``: the pieces are contiguous runs of ``idx`` that together are ``idx``
    (each element once), handed out heaviest first; a piece costs at most about the remaining
    cost over ``2 nt`` (one element may be more), so the last ones are small."""
    rng = np.random.default_rng(nt)
    cost = rng.gamma(0.5, size=300)
    cost[17] = cost.sum()  # one element heavier than all the others
    idx = np.arange(1000, 1300, dtype=np.int64)
    pieces = Engine._guided(cost, idx, nt)
    assert np.array_equal(np.sort(np.concatenate(pieces)), idx)
    for p in pieces:
        assert np.array_equal(p, np.arange(p[0], p[0] + len(p)))
    c = [float(cost[p - 1000].sum()) for p in pieces]
    assert c == sorted(c, reverse=True)
    total = cost.sum()
    assert c[0] == pytest.approx(cost[17]) or c[0] <= total / (2 * nt) + cost.max()
    assert min(c) <= 1.5 * total / (16 * nt) + 1e-9
    assert len(pieces) >= 2 * nt


def test_threaded_steps_calibrated_equal_serial(city, catalog, monkeypatch):
    """The threaded driver times its add and values pieces over the first cycles
    (``SHARE_CALIBRATE_CYCLES``, the first not used) and cuts them again by that cost
    (``Engine._thread_shares`` / ``_calibrate``): the new pieces still cover every base and row
    once, and the steps before, during and after equal the serial driver's bit for bit."""
    import numba

    import engine.core.engine as core_engine

    if numba.get_num_threads() < 2:
        pytest.skip("needs two numba threads")
    monkeypatch.setattr(core_engine, "SHARE_CALIBRATE_CYCLES", 3)
    steps = random_steps(city, catalog, K0, 8, seed=23)
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "0")
    ser = Engine(city, catalog)
    want = [ser.step(rec, at=k * C).value.values.copy() for k, rec in steps]
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", "1")
    eng = Engine(city, catalog)
    est = None
    for i, (k, rec) in enumerate(steps):
        got = eng.step(rec, at=k * C).value.values
        assert np.array_equal(got, want[i], equal_nan=True)
        ts = eng._tshares
        if i == 0:
            est = [list(ts["bases"]), list(ts["rows"])]
            assert len(est[0]) > 4 and ts["t"] is not None
        if i == 2:  # three timed cycles: cut again for the next step
            assert ts["t"] is None
    assert eng.state.equals(ser.state)
    ts = eng._tshares
    for name, all_ in (("bases", eng._all_bases), ("rows", eng._all_rows)):
        assert np.array_equal(np.sort(np.concatenate(ts[name])), all_)
    assert [list(map(len, x)) for x in (ts["bases"], ts["rows"])] != [list(map(len, x)) for x in est]

"""engine.indices batch path: all cycles in one kernel call == cycle by cycle; serial == parallel;
IndexPlan reuse; the table group sums against tests/indices_reference.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import indices_reference as ref
from engine.catalog import Catalog
from engine.city import City
from engine.indices import compute_indices, load_config
from engine.indices import compute as C
from engine.indices import kernels as K
from engine.indices.compute import IndexPlan, Prepared


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


def replay(cat, *, seed=7, T=7, n_ind=50, regions=None, city=None):
    """A replay with every rule in use: partial baselines (history fills in), thresholds, peers."""
    rng = np.random.default_rng(seed)
    ids = [i["id"] for i in cat.indicators]
    pick = sorted(rng.choice(len(ids), n_ind, replace=False).tolist())
    pick += [ids.index("safety.public_order.police_violent.count_24h"), ids.index("livelihood.community.mediation.success_rate")]
    sel = [ids[k] for k in sorted(set(pick))]
    ni, nr = len(sel), len(regions)
    v = rng.normal(0, 3, (T, ni, nr))
    v[rng.random(v.shape) < 0.1] = np.nan
    v[:, :4, :] = np.nan
    v[-1, :4, :] = rng.normal(0, 3, (4, nr))                       # no history: thresholds / peers
    e = rng.normal(0, 1, v.shape)
    s = rng.uniform(0.5, 2, v.shape)
    e[rng.random(v.shape) < 0.3] = np.nan
    e[min(2, T - 1)] = np.nan                                      # a cycle without any baseline
    dims = ("time", "indicator", "region")
    return xr.Dataset({"value": (dims, v), "expected": (dims, e), "scale": (dims, s)},
                      coords={"time": pd.date_range("2020-02-01", periods=T, freq="15min"), "indicator": sel,
                              "region": regions})


@pytest.mark.parametrize("method", ["arithmetic", "geometric"])
def test_all_cycles_at_once_equal_cycle_by_cycle_and_serial_equals_parallel(cat, method, monkeypatch):
    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    regions = list(city.regions.index)
    ds = replay(cat, regions=regions[::-1][:35], city=city)     # permuted: gathered row segments
    cfg = load_config().with_(method=method, history_min=3, peers_min=3)
    monkeypatch.setattr(C, "SERIAL_BELOW", 0)                    # the threaded kernel
    par = compute_indices(ds, cat, city, cfg)
    monkeypatch.setattr(C, "SERIAL_BELOW", 1 << 40)              # the serial twin
    ser = compute_indices(ds, cat, city, cfg)
    for k in ("health", "imputed", "grade", "safety_angle"):
        np.testing.assert_array_equal(par[k].values, ser[k].values)
    for t in range(ds.sizes["time"]):
        one = compute_indices(ds, cat, city, cfg, at=ds["time"].values[t])
        for k in ("health", "imputed", "grade", "safety_angle"):
            np.testing.assert_array_equal(one[k].values[0], par[k].values[t])
    methods = set()
    prep = Prepared(ds, cat, city, cfg)
    c = prep.run(list(range(ds.sizes["time"])), want_deficit=True)
    for t in range(ds.sizes["time"]):
        one = prep.cycle(t, want_deficit=True)
        np.testing.assert_array_equal(one["method"], c["method"][t])
        np.testing.assert_array_equal(one["deficit"], c["deficit"][t])
        methods |= set(np.unique(one["method"]).tolist())
    assert methods >= {0, 2, 3, 4, 5}


def test_contiguous_and_gathered_regions_agree(cat):
    """Regions stored street by street (row slices) or in any order (gathered copies)."""
    city = City.synthetic(seed=2, neighbourhoods=30, streets=3, population=100_000)
    regions = list(city.regions.index)
    ds = replay(cat, seed=3, T=3, regions=regions)
    cfg = load_config().with_(history_min=2, peers_min=3)
    a = compute_indices(ds, cat, city, cfg)
    perm = np.random.default_rng(0).permutation(len(regions))
    b = compute_indices(ds.isel(region=perm), cat, city, cfg).sel(region=a["region"])
    np.testing.assert_allclose(b["health"].values, a["health"].values, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(b["grade"].values, a["grade"].values)


def test_index_plan_is_reused_and_equals_compute_indices(cat):
    city = City.synthetic(seed=4, neighbourhoods=20, streets=2, population=80_000)
    regions = list(city.regions.index)
    cfg = load_config().with_(history_min=2, peers_min=3)
    plan = IndexPlan(cat, city, cfg)
    d1 = replay(cat, seed=1, T=4, regions=regions)
    d2 = replay(cat, seed=2, T=2, n_ind=30, regions=regions[:12])          # other indicators, regions
    for ds in (d1, d1, d2, d1):
        got = plan.compute(ds)
        want = compute_indices(ds, cat, city, cfg)
        xr.testing.assert_identical(got, want)
    spec = plan.spec(d1.indexes["indicator"])
    plan.compute(d1.copy(deep=True))                                       # equal labels: no rebuild
    assert plan.spec(d1.indexes["indicator"]) is spec
    t = d1["time"].values[2]
    xr.testing.assert_identical(plan.compute(d1, at=t), compute_indices(d1, cat, city, cfg, at=t))


def test_index_plan_work_arrays_are_reused_safely(cat):
    """float32 inputs are read in place, or (strided) copied into the plan's reused float32 work
    arrays: results as from float64 inputs, whatever the order and size of the calls."""
    city = City.synthetic(seed=4, neighbourhoods=20, streets=2, population=80_000)
    regions = list(city.regions.index)
    cfg = load_config().with_(history_min=2, peers_min=3)
    plan = IndexPlan(cat, city, cfg)
    d1 = replay(cat, seed=1, T=4, regions=regions).astype("float32")
    d2 = replay(cat, seed=2, T=2, n_ind=30, regions=regions[:12]).astype("float32")
    first = plan.compute(d1)
    for ds in (d2, d1.isel(time=slice(1, None, 2)), d1):
        got = plan.compute(ds)
        xr.testing.assert_identical(got, compute_indices(ds.astype("float64"), cat, city, cfg))
    xr.testing.assert_identical(first, plan.compute(d1))                 # an earlier result is not overwritten
    assert set(plan._scratch) == {("value", "<f4"), ("expected", "<f4"), ("scale", "<f4")}


@pytest.mark.parametrize("geometric", [False, True])
def test_table_group_sums_match_reference(cat, geometric):
    rng = np.random.default_rng(9)
    ids = [i["id"] for i in cat.indicators]
    sel = [ids[k] for k in sorted(rng.choice(len(ids), 300, replace=False))]
    spec = Prepared(xr.Dataset({"value": (("indicator", "region"), np.zeros((len(sel), 1)))},
                               coords={"indicator": sel, "region": ["A"]}), cat).spec
    q = rng.uniform(0, 1, (len(sel), 17))
    q[rng.random(q.shape) < 0.2] = np.nan
    q[:, 3] = np.nan
    g, gw = spec.group_arrays()
    num = np.empty((spec.n_groups, q.shape[1]))
    den = np.empty_like(num)
    K.table_group_sums(q, g, gw, geometric, 0.01, num, den)
    num_ref, den_ref = ref.group_sums_ref(q, spec, geometric, 0.01)
    np.testing.assert_allclose(num, num_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(den, den_ref, rtol=1e-12, atol=1e-12)


def test_peer_baseline_of_many_cycles_equals_one_by_one():
    rng = np.random.default_rng(5)
    v = rng.normal(0, 1, (4, 9, 6))
    v[rng.random(v.shape) < 0.3] = np.nan
    rows = rng.random((4, 9)) < 0.7
    e = np.empty((4, 9))
    s = np.empty((4, 9))
    K.peer_baseline_cycles(v, rows, 3, 0.05, 1e-6, e, s)
    for t in range(4):
        pe, ps = K.peer_baseline(v[t], rows[t], 3, 0.05, 1e-6)
        np.testing.assert_array_equal(e[t], pe)
        np.testing.assert_array_equal(s[t], ps)


def test_streaming_history_equals_window_by_window():
    rng = np.random.default_rng(8)
    h = rng.integers(0, 6, (40, 5, 4)).astype(float)            # ties on purpose
    h[rng.random(h.shape) < 0.25] = np.nan
    h[:, 0, 0] = np.nan
    h[5:9, 1, 1] = -0.0
    for window, ends in ((7, [1, 2, 3, 9, 10, 30, 31, 40]), (40, list(range(1, 41))), (3, [5, 20, 21, 22, 39]),
                         (0, [4, 8])):
        ends = np.asarray(ends, dtype=np.int64)
        e = np.empty((len(ends), 5, 4))
        s = np.empty_like(e)
        K.history_baseline_cycles(h, ends, window, 3, 0.05, 1e-6, e, s)
        for k, end in enumerate(ends):
            ew, sw, _ = K.history_baseline(np.ascontiguousarray(h[max(0, end - window):end]), 3, 0.05, 1e-6)
            np.testing.assert_array_equal(e[k], ew)
            np.testing.assert_array_equal(s[k], sw)
            er, sr = ref.history_ref(h[max(0, end - window):end], 3, 0.05, 1e-6)
            np.testing.assert_allclose(e[k], er, rtol=1e-12)


def test_chunked_replay_equals_one_chunk(cat, monkeypatch):
    city = City.synthetic(seed=6, neighbourhoods=12, streets=2, population=50_000)
    ds = replay(cat, seed=11, T=9, regions=list(city.regions.index))
    cfg = load_config().with_(history_min=2, history_window=4)
    whole = compute_indices(ds, cat, city, cfg)
    monkeypatch.setattr(C, "CHUNK_VALUES", 2 * ds.sizes["indicator"] * ds.sizes["region"])   # 2 cycles a chunk
    xr.testing.assert_identical(compute_indices(ds, cat, city, cfg), whole)


def test_robust_sorted_equals_sorting_the_deviations():
    rng = np.random.default_rng(12)
    for n in list(range(1, 12)) + [50, 51, 96, 97]:
        for kind in range(3):
            x = rng.integers(0, 4, n).astype(float) if kind == 0 else rng.normal(0, 1, n)
            if kind == 2:
                x = np.round(x, 1)
            x = np.sort(x)
            med, s = K._robust_sorted(x.copy(), n, 0.0, 0.0)
            want_med = float(np.median(x))
            want_mad = float(np.median(np.abs(x - want_med)))
            assert med == want_med
            assert s == max(K.MAD_TO_SIGMA * want_mad, 0.0, 0.0), (n, kind, x)


@pytest.mark.parametrize("history", [0, 3])
def test_rows_needing_peers_are_the_rows_a_pass_without_peers_leaves_unresolved(cat, history):
    """The rows found before the pass (:func:`~engine.indices.kernels.rows_needing_peers`) are exactly
    those whose values the kernel, given no peer baseline, counts as unresolved: reference ranges,
    thresholds, Dataset baselines (negative scales unusable), history baselines of some cycles."""
    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    regions = list(city.regions.index)
    ds = replay(cat, T=9, n_ind=120, regions=regions[::-1][:35], city=city)
    rng = np.random.default_rng(3)
    s = ds["scale"].values
    s[rng.random(s.shape) < 0.05] = -1.0                          # unusable scales
    cfg = load_config().with_(history_window=history, history_min=2, peers_min=3)
    prep = Prepared(ds, cat, city, cfg)
    cl = list(range(ds.sizes["time"]))
    v, e1, s1 = (prep._cycles(getattr(prep, n), cl) for n in ("value", "expected", "scale"))
    e2, s2, hpos = prep._history(cl, e1, s1)
    assert history == 0 or (hpos >= 0).any()
    k, ni, nr = v.shape
    spec, parent = prep.spec, prep.hier.base.parent
    n_par = len(prep.hier.levels[1].ids) if parent is not None else 0
    parent = parent if parent is not None else np.zeros(0, dtype=np.int64)
    nan = np.full((k, ni), np.nan)
    unresolved = np.zeros((k, len(prep.bstart), ni), dtype=np.int64)
    K.normalise_accumulate_serial(np.arange(k), v, e1, s1, True, e2, s2, hpos, spec.direction, spec.cfg_ref,
                                  spec.thr_ref, nan, nan, cfg.tolerance, cfg.cap, cfg.scale_floor_rel,
                                  cfg.scale_floor_abs, prep.group_of, prep.group_w, False, cfg.geometric_floor,
                                  prep.order, prep.bstart, prep.bstop, parent, prep.hier.weight, n_par,
                                  np.zeros((k, spec.n_groups, nr)), np.zeros((k, spec.n_groups, nr)),
                                  np.zeros((k, ni, n_par)), np.zeros((k, ni, n_par)), unresolved, False,
                                  np.zeros((0, 0, 0)), np.zeros((0, 0, 0), dtype=np.int8))
    want = unresolved.sum(axis=1) > 0
    got = np.empty((k, ni), dtype=np.bool_)
    K.rows_needing_peers(v, e1, s1, True, e2, s2, hpos, spec.cfg_ref, spec.thr_ref, got)
    assert want.any() and not want.all()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cycles", [[1, 2, 3], [0, 3, 5], [0, 1, 2, 3, 4, 5]], ids=["consecutive", "scattered", "all"])
def test_peers_of_consecutive_or_scattered_cycles_equal_cycle_by_cycle(cat, cycles):
    """The cycles needing peers are read in place when consecutive, gathered otherwise: the same
    indices as computing each cycle alone."""
    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    ds = replay(cat, T=6, regions=list(city.regions.index)[:30], city=city)
    rng = np.random.default_rng(3)
    e = ds["expected"].values
    e[:] = rng.normal(0, 1, e.shape)                              # a complete baseline ...
    for t in cycles:
        e[t, 5:9, :] = np.nan                                     # ... but for four rows at these cycles
    cfg = load_config().with_(history_window=0, peers_min=3)
    c = Prepared(ds, cat, city, cfg).run(list(range(6)), want_deficit=True)
    assert np.flatnonzero(np.isfinite(c["peer_e"]).any(axis=1)).tolist() == cycles
    full = IndexPlan(cat, city, cfg).compute(ds)
    for t in range(6):
        one = compute_indices(ds, cat, city, cfg, at=ds["time"].values[t])
        for k in ("health", "imputed", "grade"):
            np.testing.assert_array_equal(one[k].values[0], full[k].values[t])


def test_robust_by_selection_equals_robust_by_sorting():
    """The peers' median / MAD by quickselect (:func:`~engine.indices.kernels._robust_select`, no sort)
    equal the sorted version's bit for bit: ties, even and odd counts, floors."""
    rng = np.random.default_rng(21)
    for n in list(range(1, 14)) + [50, 51, 200, 299, 300]:
        for kind in range(4):
            if kind == 0:
                x = rng.integers(0, 4, n).astype(float)
            elif kind == 1:
                x = rng.normal(0, 1, n)
            elif kind == 2:
                x = np.round(rng.normal(5, 2, n), 1)
            else:
                x = np.full(n, 3.25)
            for floors in ((0.0, 0.0), (0.05, 1e-6), (0.5, 2.0)):
                want = K._robust(x.copy(), n, *floors)
                got = K._robust_select(x.copy(), n, *floors)
                assert np.float64(got[0]).tobytes() == np.float64(want[0]).tobytes(), (n, kind)
                assert np.float64(got[1]).tobytes() == np.float64(want[1]).tobytes(), (n, kind, floors)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_float32_inputs_read_in_place_equal_their_float64_copies(cat, layout):
    """A float32 Dataset (a run's) is read by the kernels as stored, each value converted to
    float64 as it is read: the same indices, bit for bit, as the same values given as float64,
    and the same as :meth:`Prepared.run` with the deficits (which copies to float64)."""
    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    ds = replay(cat, T=8, regions=list(city.regions.index), city=city)
    ds = ds.astype(np.float32)
    ds["expected"].values[:, 5:9, :] = np.nan                      # rows for the peers
    if layout == "strided":
        ds = ds.isel(time=slice(1, None, 2))                       # the runner's stored steps: a view
    assert all(ds[k].dtype == np.float32 for k in ("value", "expected", "scale"))
    cfg = load_config().with_(history_window=0, peers_min=3)
    got = IndexPlan(cat, city, cfg).compute(ds)
    want = IndexPlan(cat, city, cfg).compute(ds.astype(np.float64))
    for k in ("health", "imputed", "grade", "safety_angle"):
        np.testing.assert_array_equal(got[k].values, want[k].values)
        assert got[k].values.tobytes() == want[k].values.tobytes()


def test_one_numba_thread_takes_the_serial_pass(cat, monkeypatch):
    """On a thread whose numba kernels run on one thread (a run's side thread) the threaded pass
    and peer kernel are not called (nor compiled): the serial ones give the same results."""
    import numba

    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    ds = replay(cat, T=6, regions=list(city.regions.index), city=city)
    cfg = load_config().with_(history_window=0, peers_min=3)
    monkeypatch.setattr(C, "SERIAL_BELOW", 0)                      # the threaded kernels, unless one thread
    want = IndexPlan(cat, city, cfg).compute(ds)

    def boom(*a):
        raise AssertionError("the threaded kernel was called")

    before = numba.get_num_threads()
    monkeypatch.setattr(K, "normalise_accumulate", boom)
    monkeypatch.setattr(K, "peer_baseline", boom)
    numba.set_num_threads(1)
    try:
        got = IndexPlan(cat, city, cfg).compute(ds)
    finally:
        numba.set_num_threads(before)
    xr.testing.assert_identical(got, want)

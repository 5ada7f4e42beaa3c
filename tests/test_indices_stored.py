"""engine.indices on a run's stored steps: the values' copy fused with the rows that need peers
(:func:`~engine.indices.kernels.copy_rows_needing_peers`) and the parent tables in one kernel a
level (:func:`~engine.indices.kernels.parent_ratio_rollup`), each against a plain reference on
random inputs, byte for byte; and :meth:`IndexPlan.compute` of a strided view (a run's part: every
``factor``-th cycle of the day) against the same values contiguous (the path without the fusion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.catalog import Catalog
from engine.city import City
from engine.indices import load_config
from engine.indices import kernels as K
from engine.indices.compute import IndexPlan, Prepared


def rows_needing_peers_ref(v, e1, s1, cfg_ref, thr_ref):
    """Plain loops: a row without reference range and thresholds with a finite value whose
    Dataset baseline is not usable (expected or scale not finite, or scale < 0)."""
    k, ni, nr = v.shape
    out = np.zeros((k, ni), dtype=np.bool_)
    for t in range(k):
        for i in range(ni):
            if not (np.isnan(cfg_ref[i, 1]) and np.isnan(cfg_ref[i, 2]) and np.isnan(thr_ref[i, 1])
                    and np.isnan(thr_ref[i, 2])):
                continue
            for r in range(nr):
                x, e, s = float(v[t, i, r]), float(e1[t, i, r]), float(s1[t, i, r])
                if np.isfinite(x) and not (np.isfinite(e) and np.isfinite(s) and s >= 0.0):
                    out[t, i] = True
    return out


def parent_tables_ref(hier, pnum, pden):
    """The numpy formula the kernel replaced: the ratio where the weight is positive, then each
    parent's regions' sums added column by column."""
    tables = []
    for lv in range(1, len(hier.levels)):
        with np.errstate(invalid="ignore", divide="ignore"):
            tables.append(np.where(pden > 0, pnum / pden, np.nan))
        up = hier.levels[lv].parent
        if up is None:
            break
        n_up = len(hier.levels[lv + 1].ids)
        sn = np.zeros(pnum.shape[:-1] + (n_up,))
        sd = np.zeros_like(sn)
        for c in range(pnum.shape[-1]):
            sn[..., up[c]] += pnum[..., c]
            sd[..., up[c]] += pden[..., c]
        pnum, pden = sn, sd
    return tables


def random_stored(rng, k, ni, nr, step, dtype):
    """A day of ``k * step`` cycles, the stored steps ``[step - 1::step]`` as a strided view, with
    NaN and infinite values, baselines missing or infinite, negative scales, rows with rules."""
    day = rng.normal(0, 3, (k * step, ni, nr)).astype(dtype)
    day[rng.random(day.shape) < 0.3] = np.nan
    day[rng.random(day.shape) < 0.01] = np.inf
    day[rng.random(day.shape) < 0.01] = -np.inf
    x = day[step - 1::step]
    e = rng.normal(0, 1, (k, ni, nr)).astype(dtype)
    s = rng.uniform(-0.2, 2, (k, ni, nr)).astype(dtype)
    e[rng.random(e.shape) < 0.02] = np.nan
    s[rng.random(s.shape) < 0.02] = np.nan
    e[rng.random(e.shape) < 0.005] = np.inf
    s[rng.random(s.shape) < 0.005] = np.inf
    s[rng.random(s.shape) < 0.01] = -0.0
    cfg_ref = np.full((ni, 4), np.nan)
    thr_ref = np.full((ni, 4), np.nan)
    for i in rng.choice(ni, ni // 5, replace=False):
        (cfg_ref if rng.random() < 0.5 else thr_ref)[i, 1 + rng.integers(2)] = 1.0
    return x, e, s, cfg_ref, thr_ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", [1, 2, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_copy_rows_needing_peers_is_the_copy_and_the_plain_flags(dtype, step, seed):
    rng = np.random.default_rng(seed)
    k, ni, nr = 5, 40, 23
    x, e, s, cfg_ref, thr_ref = random_stored(rng, k, ni, nr, step, dtype)
    isz = x.itemsize
    src = np.lib.stride_tricks.as_strided(x, shape=((k - 1) * step + 1, ni, nr),
                                          strides=(ni * nr * isz, nr * isz, isz), writeable=False)
    v = np.full((k, ni, nr), 7.0, dtype)
    got = np.ones((k, ni), dtype=np.bool_)
    K.copy_rows_needing_peers(src, np.int64(step), e, s, cfg_ref, thr_ref, v, got)
    assert v.tobytes() == np.ascontiguousarray(x).tobytes()
    want = rows_needing_peers_ref(x, e, s, cfg_ref, thr_ref)
    assert want.any() and not want.all()
    np.testing.assert_array_equal(got, want)
    # and the kernel it fuses, on the copy
    old = np.empty((k, ni), dtype=np.bool_)
    empty = np.zeros((0, 0, 0), dtype)
    K.rows_needing_peers(np.ascontiguousarray(x), e, s, True, empty, empty, np.full(k, -1, np.int64), cfg_ref,
                         thr_ref, old)
    np.testing.assert_array_equal(got, old)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("lead", [(), (3,), (4, 6)])
def test_parent_tables_are_the_numpy_formula(seed, lead):
    rng = np.random.default_rng(seed)
    city = City.synthetic(seed=seed, neighbourhoods=60, streets=7, population=300_000)
    prep_plan = IndexPlan(Catalog.load(), city)
    hier, _ = prep_plan.hierarchy(pd.Index(list(city.regions.index)))
    n = len(hier.levels[1].ids)
    pnum = rng.normal(0, 2, lead + (n,))
    pden = rng.uniform(-0.5, 2, lead + (n,))
    pden[rng.random(pden.shape) < 0.2] = 0.0
    pden[rng.random(pden.shape) < 0.05] = -0.0
    pden[rng.random(pden.shape) < 0.05] = np.nan
    pnum[rng.random(pnum.shape) < 0.05] = -0.0
    prep = Prepared.__new__(Prepared)
    prep.hier = hier
    got = prep.parent_tables(pnum, pden)
    want = parent_tables_ref(hier, pnum, pden)
    assert len(got) == len(want) == len(hier.levels) - 1
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("method", ["arithmetic", "geometric"])
def test_stored_steps_view_gives_the_contiguous_values_indices(method):
    """A run's part (float32 values: every 4th cycle of a day, a strided view; baselines
    contiguous; no history) through the fused copy, against the same values contiguous."""
    cat = Catalog.load()
    city = City.synthetic(seed=5, neighbourhoods=40, streets=4, population=200_000)
    regions = list(city.regions.index)
    rng = np.random.default_rng(11)
    ids = [i["id"] for i in cat.indicators]
    sel = sorted(rng.choice(len(ids), 80, replace=False).tolist())
    sel = [ids[k] for k in sel]
    k, ni, nr, step = 6, len(sel), len(regions), 4
    x, e, s, _, _ = random_stored(rng, k, ni, nr, step, np.float32)
    e[:, :3] = np.nan                        # rows that need peers
    dims = ("time", "indicator", "region")
    coords = {"time": pd.date_range("2020-02-01", periods=k, freq="1h"), "indicator": sel, "region": regions}

    def dataset(values):
        return xr.Dataset({"value": xr.Variable(dims, values), "expected": xr.Variable(dims, e),
                           "scale": xr.Variable(dims, s)}, coords=coords)

    cfg = load_config().with_(method=method, history_window=0, peers_min=3)
    plan = IndexPlan(cat, city, cfg)
    strided = dataset(x)
    assert not strided["value"].values.flags.c_contiguous
    prep = plan.prepare(strided)
    rows = np.empty((k, ni), dtype=np.bool_)
    v = prep._stored_value(list(range(k)), np.float32, e, s, np.full(k, -1, np.int64), rows)
    assert v is not None and rows.any()                        # the fused path is taken
    a = plan.compute(strided)
    b = plan.compute(dataset(np.ascontiguousarray(x)))
    assert plan.prepare(dataset(np.ascontiguousarray(x)))._stored_value(
        list(range(k)), np.float32, e, s, np.full(k, -1, np.int64), rows) is None
    for name in a.data_vars:
        assert a[name].values.tobytes() == b[name].values.tobytes(), name

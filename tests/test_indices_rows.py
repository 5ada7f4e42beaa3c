"""engine.indices.kernels.normalise_accumulate_serial's sums against plain loops
(tests/indices_reference.py ``accumulate_sums_ref``), bit for bit: the row loop handles rows in
fours for the parent sums (and the last one to three rows alone), so every count of rows modulo 4,
regions in place (contiguous) or gathered, arithmetic and geometric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import indices_reference as ref
from engine.catalog import Catalog
from engine.city import City
from engine.indices import load_config
from engine.indices import kernels as K
from engine.indices.compute import Prepared


@pytest.fixture(scope="module")
def setup():
    cat = Catalog.load()
    city = City.synthetic(seed=5, neighbourhoods=24, streets=4, population=120_000)
    return cat, city


@pytest.mark.parametrize(("contiguous", "geometric"), [(True, False), (False, True)],
                         ids=["contiguous-arithmetic", "gathered-geometric"])
@pytest.mark.parametrize("n_ind", [3, 4, 6, 9])
def test_sums_equal_plain_loops_bit_for_bit(setup, n_ind, contiguous, geometric):
    cat, city = setup
    rng = np.random.default_rng(100 + n_ind)
    ids = [i["id"] for i in cat.indicators]
    sel = [ids[k] for k in sorted(rng.choice(len(ids), n_ind, replace=False))]
    regions = list(city.regions.index)
    if not contiguous:
        regions = regions[::-1]                                    # visited street by street: gathered
    T, nr = 2, len(regions)
    v = rng.normal(0, 3, (T, n_ind, nr))
    v[rng.random(v.shape) < 0.3] = np.nan
    e = rng.normal(0, 1, v.shape)
    s = rng.uniform(0.5, 2, v.shape)
    e[rng.random(v.shape) < 0.3] = np.nan                           # values left to the rule chain / peers
    s[rng.random(v.shape) < 0.05] = -1.0
    dims = ("time", "indicator", "region")
    ds = xr.Dataset({"value": (dims, v), "expected": (dims, e), "scale": (dims, s)},
                    coords={"time": pd.date_range("2020-02-01", periods=T, freq="h"), "indicator": sel,
                            "region": regions})
    cfg = load_config().with_(history_window=0, method="geometric" if geometric else "arithmetic")
    prep = Prepared(ds, cat, city, cfg)
    cl = list(range(T))
    v, e1, s1 = (prep._cycles(getattr(prep, n), cl) for n in ("value", "expected", "scale"))
    e2, s2, hpos = prep._history(cl, e1, s1)
    spec, parent = prep.spec, prep.hier.base.parent
    n_par = len(prep.hier.levels[1].ids)
    assert (np.diff(prep.order) == 1).all() == contiguous
    pe = np.where(rng.random((T, n_ind)) < 0.5, 0.1, np.nan)       # peers for some rows
    ps = np.ones((T, n_ind))

    def run(want_deficit):
        ng = spec.n_groups
        out = [np.zeros((T, ng, nr)), np.zeros((T, ng, nr)), np.zeros((T, n_ind, n_par)), np.zeros((T, n_ind, n_par)),
               np.zeros((T, len(prep.bstart), n_ind), dtype=np.int64)]
        d = np.empty((T, n_ind, nr)) if want_deficit else np.zeros((0, 0, 0))
        m = np.empty((T, n_ind, nr), dtype=np.int8) if want_deficit else np.zeros((0, 0, 0), dtype=np.int8)
        K.normalise_accumulate_serial(np.arange(T), v, e1, s1, True, e2, s2, hpos, spec.direction, spec.cfg_ref,
                                      spec.thr_ref, pe, ps, cfg.tolerance, cfg.cap, cfg.scale_floor_rel,
                                      cfg.scale_floor_abs, prep.group_of, prep.group_w, geometric, cfg.geometric_floor,
                                      prep.order, prep.bstart, prep.bstop, parent, prep.hier.weight, n_par,
                                      *out, want_deficit, d, m)
        return out, d, m

    got, _, _ = run(False)
    with_d, d, m = run(True)
    assert (m == 0).any() and (m == 2).any() and (m == 5).any()
    want = ref.accumulate_sums_ref(d, m, geometric, cfg.geometric_floor, spec.n_groups, prep.group_of, prep.group_w, prep.order,
                                   parent, prep.hier.weight, n_par)
    for a, b, c in zip(got[:4], with_d[:4], want):
        assert a.tobytes() == c.tobytes()
        assert b.tobytes() == c.tobytes()
    unresolved = (np.isfinite(v) & (m == 0)).sum()
    assert got[4].sum() == with_d[4].sum() == unresolved

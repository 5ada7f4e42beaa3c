"""Indices group: composite indices for the full catalog x N neighbourhoods, one cycle.

The engine is :func:`engine.indices.compute_indices` (numba pass over indicator x region fused
with the group sums, then small loops for streets / district; the catalog-derived arrays are
rebuilt on every call, as a one-off call would); the peer is a
straightforward pandas implementation of the same rules for the production case (a complete
``expected``/``scale`` baseline from the detectors, ~1 % missing values, catalog reference
ranges). Both produce ``health`` for every index at every level and must agree.

Sizes: 300 neighbourhoods (quick) and 6,000 (``@pytest.mark.heavy``; target <= 0.2 s).

Group ``indices-part-300``: a scenario run's part, as its side thread computes it (one numba
thread): 12 stored steps (every 4th of 48 cycles: the values a strided float32 view, the
detectors' float32 ``expected`` / ``scale``), :meth:`IndexPlan.compute` with the run's config
(``history_window = 0``); the peer is the pandas implementation step by step on float64 copies.

CI size of ``indices-part-300`` (``--benchmark-disable``, one untimed run): 44 neighbourhoods, 2
streets (the same ~3,700 residents a neighbourhood), the same 48 cycles, 12 stored steps and
float32 inputs: :meth:`IndexPlan.compute` takes the same paths (12 x 2,926 x 44 = 1.5 M values,
still over ``SERIAL_BELOW``: the threaded kernel in the peer test, the serial one on the
engine test's one thread; one region block a cycle at both sizes). Both assertions run.
The one-cycle groups (``indices-300``) keep their size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.catalog import Catalog
from engine.city import City
from engine.indices import compute_indices, load_config
from engine.indices.compute import Prepared

SIZES = [pytest.param((300, 13), id="300"), pytest.param((6000, 60), id="6000", marks=pytest.mark.heavy)]


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module", params=SIZES)
def case(request, catalog):
    n, streets = request.param
    city = City.synthetic(seed=0, neighbourhoods=n, streets=streets, population=3_700 * n)
    ids = [i["id"] for i in catalog.indicators]
    rng = np.random.default_rng(1)
    v = rng.normal(0.0, 1.5, (len(ids), n))
    v[rng.random(v.shape) < 0.01] = np.nan
    e = rng.normal(0.0, 0.1, v.shape)
    s = rng.uniform(0.8, 1.2, v.shape)
    ds = xr.Dataset({"value": (("indicator", "region"), v), "expected": (("indicator", "region"), e),
                     "scale": (("indicator", "region"), s)},
                    coords={"indicator": ids, "region": list(city.regions.index)})
    return {"ds": ds, "city": city, "n": n, "size": f"{len(ids)} indicators x {n} neighbourhoods, 1 cycle"}


def group(case) -> str:
    return f"indices-{case['n']}"


def _bytes(ds) -> int:
    return int(ds["value"].nbytes * 3)          # value, expected, scale read once; outputs are small


def pandas_indices(ds, catalog, city, cfg) -> np.ndarray:
    """The peer: the same rules with pandas/numpy, for a complete baseline. Returns health
    (n_index, n_all_regions) in the engine's row and column order."""
    prep = Prepared(ds, catalog, city, cfg)               # only for the labels and group arrays
    spec, hier = prep.spec, prep.hier
    v, e, s = (ds[k].values for k in ("value", "expected", "scale"))
    s = np.maximum(s, np.maximum(cfg.scale_floor_rel * np.abs(e), cfg.scale_floor_abs))
    z = (v - e) / s
    dirn = spec.direction[:, None]
    zd = np.where(dirn == 0, np.maximum(z, 0), np.where(dirn == 1, np.maximum(-z, 0), np.abs(z)))
    d = np.clip((zd - cfg.tolerance) / (cfg.cap - cfg.tolerance), 0, 1)
    ref = spec.cfg_ref
    rows = ~(np.isnan(ref[:, 1]) & np.isnan(ref[:, 2]))
    if rows.any():
        r = ref[rows][:, :, None]
        x = v[rows]
        up = np.where(np.isnan(r[:, 2]), 0, np.clip((x - r[:, 2]) / (r[:, 3] - r[:, 2]), 0, 1))
        lo = np.where(np.isnan(r[:, 1]), 0, np.clip((r[:, 1] - x) / (r[:, 1] - r[:, 0]), 0, 1))
        d[rows] = np.maximum(up, lo)
    q = pd.DataFrame(np.where(np.isnan(v), np.nan, 1 - d), columns=hier.base.ids)
    frames = [q]
    w_region = pd.Series(hier.weight, index=hier.base.ids)
    parent = pd.Series(hier.base.parent, index=hier.base.ids)
    streets = hier.levels[1]
    wq = (q * w_region).T.groupby(parent).sum(min_count=1).T
    ww = (q.notna() * w_region).T.groupby(parent).sum().T
    qs = (wq / ww.where(ww > 0)).set_axis(streets.ids, axis=1)
    qd = ((q * w_region).sum(axis=1, min_count=1) / (q.notna() * w_region).sum(axis=1)).to_frame(hier.levels[2].ids[0])
    frames += [qs, qd]
    out = []
    keys_dim = pd.Series([spec.dims[k] for k in spec.dim_of])
    w = pd.Series(spec.weight)

    def gmean(frame, key, weights):
        valid = frame.notna()
        num = frame.fillna(0).mul(weights, axis=0).groupby(key.values).sum()
        den = valid.mul(weights, axis=0).groupby(key.values).sum()
        return num / den.where(den > 0)

    for f in frames:
        f = f.reset_index(drop=True)
        dims = gmean(f, keys_dim, w).reindex(spec.dims)
        dom_key = pd.Series([spec.domains[spec.dom_of_dim[k]] for k in range(len(spec.dims))], index=spec.dims)
        doms = gmean(dims, dom_key, pd.Series(spec.dim_weight, index=spec.dims)).reindex(spec.domains)
        overall = gmean(doms, pd.Series("overall", index=spec.domains), pd.Series(spec.dom_weight, index=spec.domains))
        ang_key = pd.Series(spec.angle_of)
        ang = gmean(f[ang_key.values >= 0], ang_key[ang_key >= 0], w[ang_key >= 0]).reindex(range(len(spec.config.angles)))
        safety = gmean(ang, pd.Series("safety_index", index=ang.index), pd.Series(spec.angle_weight, index=ang.index))
        risk_key = pd.Series(spec.risk_of)
        risks = gmean(f[risk_key.values >= 0], risk_key[risk_key >= 0], w[risk_key >= 0]).reindex(range(len(spec.risk_keys)))
        out.append(100 * pd.concat([overall, doms, dims, safety, risks]).to_numpy())
    return np.concatenate(out, axis=1)


def test_indices_engine(benchmark, case, catalog):
    cfg = load_config()
    compute_indices(case["ds"], catalog, case["city"], cfg)       # compile / warm caches
    engine_bench(benchmark, group(case), bytes_touched=_bytes(case["ds"]), size=case["size"])
    out = benchmark(compute_indices, case["ds"], catalog, case["city"], cfg)
    assert out["health"].shape == (21, case["n"] + len(case["city"].streets) + 1)
    h = out["health"].sel(index="overall").values
    assert np.isfinite(h).all() and (h > 50).all() and (h <= 100).all()


def test_indices_pandas_peer(benchmark, case, catalog):
    cfg = load_config()
    peer_bench(benchmark, group(case), scale=1.0, size=case["size"])
    peer = benchmark(pandas_indices, case["ds"], catalog, case["city"], cfg)
    engine = compute_indices(case["ds"], catalog, case["city"], cfg)["health"].values
    assert_same(engine, peer, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def run_part(catalog, ci_size):
    """A runner part at 300 neighbourhoods: 48 cycles of float32 values, the stored steps every 4th
    (a strided view, as ``part.isel(time=slice(3, None, 4))``), float32 baselines, ~1 % missing."""
    n, streets = (44, 2) if ci_size else (300, 13)
    city = City.synthetic(seed=0, neighbourhoods=n, streets=streets, population=3_700 * n)
    ids = [i["id"] for i in catalog.indicators]
    rng = np.random.default_rng(2)
    shape = (48, len(ids), n)
    v = rng.normal(0.0, 1.5, shape).astype(np.float32)
    v[rng.random(shape) < 0.01] = np.nan
    dims = ("time", "indicator", "region")
    day = xr.Dataset({"value": (dims, v)}, coords={"time": pd.date_range("2020-03-02 00:15", periods=48, freq="15min"),
                                                   "indicator": ids, "region": list(city.regions.index)})
    ds = day.isel(time=slice(3, None, 4))
    ds["expected"] = (dims, rng.normal(0.0, 0.1, (12,) + shape[1:]).astype(np.float32))
    ds["scale"] = (dims, rng.uniform(0.8, 1.2, (12,) + shape[1:]).astype(np.float32))
    return {"ds": ds, "city": city}


def _run_config():
    import dataclasses

    return dataclasses.replace(load_config(), history_window=0)


def test_indices_part_engine(benchmark, run_part, catalog):
    import numba

    from engine.indices import IndexPlan

    plan = IndexPlan(catalog, run_part["city"], _run_config())
    before = numba.get_num_threads()
    numba.set_num_threads(1)                                   # the run's side thread
    try:
        plan.compute(run_part["ds"])                           # compile / warm caches
        n = run_part["city"].n_regions
        engine_bench(benchmark, "indices-part-300", bytes_touched=int(run_part["ds"]["value"].nbytes * 3),
                     size=f"12 stored steps x 2926 indicators x {n} neighbourhoods, float32, one thread")
        out = benchmark(plan.compute, run_part["ds"])
    finally:
        numba.set_num_threads(before)
    assert out["health"].shape == (12, 21, run_part["city"].n_regions + len(run_part["city"].streets) + 1)


def test_indices_part_pandas_peer(benchmark, run_part, catalog):
    from engine.indices import IndexPlan

    cfg = _run_config()
    ds = run_part["ds"]

    def peer():
        return np.stack([pandas_indices(ds.isel(time=t).astype(np.float64), catalog, run_part["city"], cfg)
                         for t in range(ds.sizes["time"])])

    peer_bench(benchmark, "indices-part-300", scale=1.0,
               size=f"12 stored steps x 2926 indicators x {run_part['city'].n_regions} neighbourhoods")
    got = benchmark(peer)
    engine = IndexPlan(catalog, run_part["city"], cfg).compute(ds)["health"].values
    assert_same(engine, got, rtol=1e-9, atol=1e-9)

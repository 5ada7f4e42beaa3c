"""The run's stores' compressor and the per-part Datasets the runner hands the indices (fourteenth
session): lossless, readable by ``xarray.open_zarr``, and the same Datasets as the assignments
they replace. Small and quick (no kernel of its own: the last test runs the indices' float64
kernels, which ``tests/test_indices.py`` compiles as well)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr


def _day(d: int, n_t: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed + d)
    v = rng.normal(5, 2, size=(n_t, 6, 5)).astype(np.float32)
    s = rng.uniform(0, 1, size=(n_t, 6, 5)).astype(np.float32)
    v[rng.uniform(size=v.shape) < 0.4] = np.nan
    s[rng.uniform(size=s.shape) < 0.4] = np.nan
    v[:, 1] = v[0, 1]                      # a row repeated from step to step (as the demo's rolling values)
    v.view(np.uint32)[0, 2, 0] = 0x7FC00001   # a NaN with a payload: stored as it is
    step = pd.Timedelta("1D") / n_t
    times = pd.date_range(pd.Timestamp("2020-02-24") + d * pd.Timedelta("1D") + step, periods=n_t, freq=step).values
    coords = {"time": times, "indicator": [f"x.y.i{k}.count_1h" for k in range(6)],
              "region": [f"N{k:04d}" for k in range(5)], "name_zh": ("indicator", [f"指标{k}" for k in range(6)])}
    dims = ("time", "indicator", "region")
    return xr.Dataset({"value": (dims, v), "score": (dims, s)}, coords=coords, attrs={"cycle": "15min"})


def test_stores_are_lz4_without_shuffle_and_lossless(tmp_path):
    from engine.scenario.store import DayWriter

    days = [_day(d) for d in range(3)]
    w = DayWriter(background=True)
    path = tmp_path / "values.zarr"
    for ds in days:
        data = {k: ds[k].values for k in ("value", "score")}
        w.write(path, lambda ds=ds: ds, data, ds["time"].values, ds.attrs)
    w.close()
    for k in ("value", "score"):
        comp = json.loads((path / k / ".zarray").read_text())["compressor"]
        assert comp == {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 0, "blocksize": 0}, comp
    back = xr.open_zarr(path).load()
    for k in ("value", "score"):
        want = np.concatenate([ds[k].values for ds in days])
        np.testing.assert_array_equal(back[k].values.view(np.uint32), want.view(np.uint32))   # NaN payloads too
    np.testing.assert_array_equal(back["time"].values, np.concatenate([ds["time"].values for ds in days]))


@pytest.mark.parametrize("factor,a,b", [(4, 0, 8), (4, 8, 16), (1, 3, 9), (2, 4, 12)])
def test_stored_steps_equal_the_assignments_they_replace(factor, a, b):
    from engine.scenario.runner import _stored_steps

    day = _day(0, n_t=16)[["value"]].assign_attrs(level="neighbourhood")
    rng = np.random.default_rng(factor + a)
    n = (b - a) // factor
    expected = rng.normal(size=(n, 6, 5)).astype(np.float32)
    scale = rng.uniform(size=(n, 6, 5)).astype(np.float32)
    scores = rng.uniform(size=(b - a, 6, 5)).astype(np.float32)
    # what the runner did before: the part, its scores, the stored steps, the baselines assigned
    part = day.isel(time=slice(a, b))
    part["score"] = (("time", "indicator", "region"), scores)
    old = part.isel(time=slice(factor - 1, None, factor)) if factor > 1 else part
    old["expected"] = (("time", "indicator", "region"), expected)
    old["scale"] = (("time", "indicator", "region"), scale)
    new = _stored_steps(day, a, b, factor, expected, scale)
    xr.testing.assert_identical(new, old.drop_vars("score"))   # the indices read no score
    assert new["expected"].values is expected or np.shares_memory(new["expected"].values, expected)


def test_index_output_coordinates_unchanged():
    """``compute``'s output coordinates: the plan's with the cycles' times (as ``Coordinates.assign``
    made them), and a Dataset already in (time, indicator, region) order is read as it is."""
    from engine.indices import IndexPlan
    from engine.indices.compute import _dims_ok

    ids = ["safety.public_order.police_violent.count_24h", "safety.public_safety.fire_all.count_24h"]
    times = pd.date_range("2020-02-24 01:00", periods=3, freq="h")
    rng = np.random.default_rng(5)
    dims = ("time", "indicator", "region")
    ds = xr.Dataset({"value": (dims, rng.uniform(0, 3, (3, 2, 2))), "expected": (dims, np.ones((3, 2, 2))),
                     "scale": (dims, np.ones((3, 2, 2)))},
                    coords={"time": times, "indicator": ids, "region": ["A", "B"]})
    assert _dims_ok(ds["value"], "value") is not None
    xr.testing.assert_identical(_dims_ok(ds["value"], "value"), ds["value"])
    xr.testing.assert_identical(_dims_ok(ds["value"].transpose("region", "time", "indicator"), "value"), ds["value"])
    plan = IndexPlan()
    out = plan.compute(ds)
    prep = plan.prepare(ds)
    want = plan.coords(prep.spec, prep.hier).assign(time=times.values)
    xr.testing.assert_identical(xr.Dataset(coords=out.coords), xr.Dataset(coords=want))
    # the transposed input gives the same result
    xr.testing.assert_identical(plan.compute(ds.transpose("region", "indicator", "time")), out)

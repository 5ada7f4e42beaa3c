"""The run's stored-period kernel (engine/scenario/store.py) against tests/scenario_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

import scenario_reference as ref
from engine.scenario.store import period_mean_max


# float32 values only: what the runner passes (the engine's replay output); a float64 case compiled a
# second specialisation of the parallel kernel (~7 s CPU on CI) that no production caller runs
@pytest.mark.parametrize("seed,factor,n_t,dtype", [(0, 4, 96, np.float32), (1, 3, 10, np.float32),
                                                   (2, 1, 5, np.float32), (3, 4, 3, np.float32)])
def test_period_mean_max_matches_reference(seed, factor, n_t, dtype):
    rng = np.random.default_rng(seed)
    v = rng.normal(10, 3, size=(n_t, 7, 5)).astype(dtype)
    s = rng.uniform(0, 1, size=(n_t, 7, 5)).astype(np.float32)
    v[rng.uniform(size=v.shape) < 0.3] = np.nan
    s[rng.uniform(size=s.shape) < 0.3] = np.nan
    v[:factor, 0, 0] = np.nan                                  # a period with no data at all
    s[:factor, 0, 0] = np.nan
    mean, top = period_mean_max(v, s, factor)
    want_mean, want_top = ref.period_mean_max(v, s, factor)
    assert mean.shape == (n_t // factor, 7, 5) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    np.testing.assert_array_equal(top, want_top)
    if len(mean):
        assert np.isnan(mean[0, 0, 0]) and np.isnan(top[0, 0, 0])


def test_period_mean_max_rejects_bad_input():
    with pytest.raises(ValueError, match="factor must be a whole number >= 1, got 0"):
        period_mean_max(np.zeros((4, 1, 1)), np.zeros((4, 1, 1)), 0)
    with pytest.raises(ValueError, match=r"\(4, 1, 1\) and \(4, 2, 1\)"):
        period_mean_max(np.zeros((4, 1, 1)), np.zeros((4, 2, 1)), 2)


def _day(d, n_t=4, seed=0, nan_share=0.2):
    """Day ``d`` of a small run's stored steps: value and score (time, indicator, region) and the
    coordinates and attributes a run's Dataset has (labels and names without time)."""
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(seed + d)
    v = rng.normal(5, 2, size=(n_t, 6, 5)).astype(np.float32)
    s = rng.uniform(0, 1, size=(n_t, 6, 5)).astype(np.float32)
    v[rng.uniform(size=v.shape) < nan_share] = np.nan
    s[rng.uniform(size=s.shape) < nan_share] = np.nan
    step = pd.Timedelta("1D") / n_t
    times = pd.date_range(pd.Timestamp("2020-02-24") + d * pd.Timedelta("1D") + step, periods=n_t, freq=step).values
    coords = {"time": times, "indicator": [f"x.y.i{k}.count_1h" for k in range(6)],
              "region": [f"N{k:04d}" for k in range(5)], "name_zh": ("indicator", [f"指标{k}" for k in range(6)]),
              "name": ("region", [f"社区{k}" for k in range(5)])}
    dims = ("time", "indicator", "region")
    return xr.Dataset({"value": (dims, v), "score": (dims, s)}, coords=coords,
                      attrs={"start": str(times[0]), "core.future": np.int64(d), "cycle": "15min"})


def _xarray_store(days, path):
    """The store as the runner wrote it before DayWriter: xarray's create, then one append a day."""
    from engine.scenario.store import create_store

    create_store(days[0], path)
    for ds in days[1:]:
        ds = ds.drop_vars([k for k, v in ds.coords.items() if "time" not in v.dims])
        ds.to_zarr(path, append_dim="time", consolidated=True, zarr_format=2)


@pytest.mark.parametrize("n_t,background", [(4, True), (4, False), (96, True)])
def test_day_writer_stores_what_xarray_appends(tmp_path, n_t, background):
    """DayWriter (create, then append_day from its thread) stores the same as xarray's appends:
    the same data bit for bit, times, coordinates, attributes, chunks and compressor."""
    import json

    import xarray as xr

    from engine.scenario.store import DayWriter

    days = [_day(d, n_t) for d in range(4)]
    _xarray_store(days, tmp_path / "old.zarr")
    w = DayWriter(background=background)
    path = tmp_path / "new.zarr"
    for ds in days:
        shapes = {k: (ds[k].shape, ds[k].dtype) for k in ("value", "score")}
        buf = w.buffers(path, shapes)
        for k in buf:
            np.copyto(buf[k], ds[k].values)
        w.write(path, lambda: ds.copy(data={k: buf[k] for k in ds.data_vars}), buf, ds["time"].values, ds.attrs)
    w.close()
    old = xr.open_zarr(tmp_path / "old.zarr").load()
    new = xr.open_zarr(path).load()
    xr.testing.assert_identical(old, new)
    assert new.sizes["time"] == 4 * n_t and old.attrs["core.future"] == new.attrs["core.future"] == 3
    for k in ("value", "score"):
        np.testing.assert_array_equal(old[k].values.view(np.uint32), new[k].values.view(np.uint32))  # NaNs too
    meta_old = json.loads((tmp_path / "old.zarr" / ".zmetadata").read_text())["metadata"]
    meta_new = json.loads((path / ".zmetadata").read_text())["metadata"]
    assert meta_old == meta_new


def test_day_buffers_are_not_reused_while_written(tmp_path, monkeypatch):
    """With slow writes, the buffers handed out for the next days never hold a day still being
    written: the store ends equal to xarray's appends, and the sets alternate after the first day."""
    import time

    import xarray as xr

    import engine.scenario.store as st

    inner = st.append_day

    def slow(*a, **k):
        time.sleep(0.2)
        return inner(*a, **k)

    monkeypatch.setattr(st, "append_day", slow)
    days = [_day(d) for d in range(5)]
    _xarray_store(days, tmp_path / "old.zarr")
    w = st.DayWriter()
    path = tmp_path / "s.zarr"
    seen = []
    for ds in days:
        buf = w.buffers(path, {k: (ds[k].shape, ds[k].dtype) for k in ("value", "score")})
        seen.append(id(buf["value"]))
        for k in buf:
            np.copyto(buf[k], ds[k].values)
        w.write(path, lambda: ds.copy(data={k: buf[k] for k in ds.data_vars}), buf, ds["time"].values, ds.attrs)
    w.close()
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "old.zarr").load(), xr.open_zarr(path).load())
    assert seen[1] != seen[2] and seen[2] != seen[3] and seen[1] == seen[3]   # day 0 is written at once


def test_append_day_rejects_bad_days(tmp_path):
    from engine.scenario.store import append_day, create_store

    days = [_day(d) for d in range(2)]
    path = tmp_path / "s.zarr"
    create_store(days[0], path)
    good = {k: days[1][k].values for k in ("value", "score")}
    with pytest.raises(ValueError, match=r"every time-dim array of the store \['score', 'value'\], got \['value'\]"):
        append_day(path, {"value": good["value"]}, days[1]["time"].values)
    with pytest.raises(ValueError, match=r"value must be \(4, 6, 5\) after 4 stored steps; got \(3, 6, 5\)"):
        append_day(path, {"value": good["value"][:3], "score": good["score"]}, days[1]["time"].values)
    with pytest.raises(ValueError, match="not after the store's last time"):
        append_day(path, good, days[0]["time"].values)
    with pytest.raises(ValueError, match="not exact in the store's units"):
        append_day(path, good, days[1]["time"].values + np.timedelta64(1, "s"))


def test_period_mean_max_into_out_arrays():
    rng = np.random.default_rng(5)
    v = rng.normal(size=(8, 3, 4)).astype(np.float32)
    s = rng.uniform(size=(8, 3, 4)).astype(np.float32)
    day = np.full((4, 3, 4), -1.0, np.float32), np.full((4, 3, 4), -1.0, np.float32)
    period_mean_max(v, s, 4, out=(day[0][1:3], day[1][1:3]))
    want = period_mean_max(v, s, 4)
    np.testing.assert_array_equal(day[0][1:3], want[0])
    np.testing.assert_array_equal(day[1][1:3], want[1])
    assert (day[0][[0, 3]] == -1).all()
    with pytest.raises(ValueError, match=r"C-contiguous float32 of shape \(2, 3, 4\), got float64 \(2, 3, 4\)"):
        period_mean_max(v, s, 4, out=(np.zeros((2, 3, 4)), np.zeros((2, 3, 4), np.float32)))


def test_small_pages_turns_numpy_hugepage_advice_off_and_back():
    from engine.scenario.runner import small_pages

    setter = np._core.multiarray._set_madvise_hugepage
    before = setter(True)                       # known state: advice on
    try:
        with small_pages():
            assert setter(False) is False       # off inside (the call returns the previous value)
        assert setter(True) is True             # back on after
        with pytest.raises(RuntimeError, match="boom"):
            with small_pages():
                raise RuntimeError("boom")
        assert setter(True) is True             # restored after an error too
    finally:
        setter(before)

"""append_day's file-by-file path (engine/scenario/store.py ``_append_plain``) against zarr's own
(``_append_zarr``, the slow obvious reference): the same stores, byte for byte, every file."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import engine.scenario.store as st


def _day(d, n_t, n_i, n_r, seed=0, grade=False, attrs=None):
    """A run's stored day of ``n_t`` steps: float32 value and score with NaNs, inf and -0.0 (and an
    int8 ``grade`` without a fill value), coordinates and attributes as a run's."""
    import xarray as xr

    rng = np.random.default_rng(seed * 100 + d)
    dims = ("time", "indicator", "region")
    v = rng.normal(5, 2, size=(n_t, n_i, n_r)).astype(np.float32)
    s = rng.uniform(0, 1, size=(n_t, n_i, n_r)).astype(np.float32)
    v[rng.uniform(size=v.shape) < 0.4] = np.nan
    s[rng.uniform(size=s.shape) < 0.6] = np.nan
    v.flat[:3] = [np.inf, -np.inf, -0.0]
    v[:, : n_i // 2] = np.where(rng.uniform(size=(n_t, n_i // 2, n_r)) < 0.5, v[:1, : n_i // 2], v[:, : n_i // 2])
    step = pd.Timedelta("1D") / 24
    times = pd.date_range(pd.Timestamp("2020-02-24") + d * n_t * step + step, periods=n_t, freq=step).values
    data = {"value": (dims, v), "score": (dims, s)}
    if grade:
        data["grade"] = (dims, rng.integers(0, 5, size=(n_t, n_i, n_r)).astype(np.int8))
    coords = {"time": times, "indicator": [f"i{k}" for k in range(n_i)], "region": [f"N{k:04d}" for k in range(n_r)],
              "name_zh": ("indicator", [f"指标{k}" for k in range(n_i)])}
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {"start": str(times[0]), "core.future": np.int64(d)}))


def _files(path) -> dict:
    out = {}
    for dp, _, fs in os.walk(path):
        for f in fs:
            q = os.path.join(dp, f)
            with open(q, "rb") as fh:
                out[os.path.relpath(q, path)] = fh.read()
    return out


def _stores(tmp_path, days, monkeypatch, plain_expected=True):
    """The days written to two stores: zarr's path only, and append_day as it is (the plain path
    expected to write every day when ``plain_expected``). Returns both stores' files."""
    paths = {}
    for way in ("zarr", "plain"):
        p = tmp_path / f"{way}.zarr"
        st.create_store(days[0], p)
        with monkeypatch.context() as m:
            if way == "zarr":
                m.setattr(st, "_append_plain", lambda *a: False)
            elif plain_expected:
                def refuse(*a):
                    raise AssertionError("zarr path taken")
                m.setattr(st, "_append_zarr", refuse)
            for ds in days[1:]:
                st.append_day(p, {k: ds[k].values for k in ds.data_vars if "time" in ds[k].dims},
                              ds["time"].values, ds.attrs)
        paths[way] = p
    return _files(paths["zarr"]), _files(paths["plain"]), paths


@pytest.mark.parametrize("n_t,n_i,n_r,grade", [(4, 6, 5, False), (24, 300, 7, False), (24, 200, 7, True),
                                                (24, 600, 3, False), (96, 20, 4, True), (2, 3, 2, True)])
def test_plain_append_writes_the_bytes_zarr_writes(tmp_path, monkeypatch, n_t, n_i, n_r, grade):
    """Whole days (chunks of one day; indicators in chunks of 256, the last one partial and padded
    with NaN; int8 ``grade`` in whole chunks: it has no fill value): every chunk, ``.zarray``,
    ``.zattrs`` and ``.zmetadata`` byte for byte, and the store reads back the days."""
    import xarray as xr

    days = [_day(d, n_t, n_i, n_r, grade=grade) for d in range(4)]
    old, new, paths = _stores(tmp_path, days, monkeypatch)
    assert sorted(old) == sorted(new)
    assert [k for k in old if old[k] != new[k]] == []
    assert any(k.startswith("value/3.") for k in new) and ".zmetadata" in new
    back = xr.open_zarr(paths["plain"]).load()
    for k in ("value", "score") + (("grade",) if grade else ()):
        want = np.concatenate([ds[k].values for ds in days])
        np.testing.assert_array_equal(back[k].values.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(back["time"].values, np.concatenate([ds["time"].values for ds in days]))
    assert back.attrs["core.future"] == 3


def test_plain_append_attributes_merge_as_zarr(tmp_path, monkeypatch):
    """New group attributes are added after the old ones, changed ones replaced in place; none given
    leaves them; the same bytes as zarr's ``update_attributes``."""
    days = [_day(0, 4, 6, 5, attrs={"a": 1, "b": "x", "core.future": np.int64(0)}),
            _day(1, 4, 6, 5, attrs={"c": 2.5, "a": np.float32(0.5)}),
            _day(2, 4, 6, 5, attrs={}),
            _day(3, 4, 6, 5, attrs={"nan": float("nan"), "list": [1, 2]})]
    old, new, _ = _stores(tmp_path, days, monkeypatch)
    assert [k for k in old if old[k] != new[k]] == [] and sorted(old) == sorted(new)


def test_partial_days_fall_back_where_not_plain(tmp_path, monkeypatch):
    """A day shorter than the store's time chunk (its last chunk partial: the ``time`` coordinate
    and int8 ``grade`` have no fill value to pad it with) and the next day starting inside a chunk:
    zarr writes those days. The stores are the same bytes either way."""
    import xarray as xr

    days = [_day(0, 4, 6, 5), _day(1, 4, 6, 5).isel(time=slice(0, 3)), _day(2, 4, 6, 5)]
    days[2] = days[2].assign_coords(time=days[2]["time"].values + np.timedelta64(1, "D"))
    old, new, paths = _stores(tmp_path, days, monkeypatch, plain_expected=False)
    assert [k for k in old if old[k] != new[k]] == [] and sorted(old) == sorted(new)
    back = xr.open_zarr(paths["plain"]).load()["value"].values
    np.testing.assert_array_equal(back.view(np.uint32),
                                  np.concatenate([ds["value"].values for ds in days]).view(np.uint32))
    taken = []
    p = tmp_path / "g.zarr"
    gdays = [_day(0, 4, 6, 5, grade=True), _day(1, 4, 6, 5, grade=True).isel(time=slice(0, 3))]
    st.create_store(gdays[0], p)
    monkeypatch.setattr(st, "_append_zarr", lambda *a: taken.append(1))
    st.append_day(p, {k: gdays[1][k].values for k in ("value", "score", "grade")}, gdays[1]["time"].values)
    assert taken == [1]                    # a partial chunk without a fill value: zarr's path


def test_plain_append_rejects_bad_days_as_zarr(tmp_path, monkeypatch):
    """The same checks and messages on both paths (nothing written by a refused day)."""
    days = [_day(d, 4, 6, 5) for d in range(2)]
    good = {k: days[1][k].values for k in ("value", "score")}
    for way in ("plain", "zarr"):
        p = tmp_path / f"{way}.zarr"
        st.create_store(days[0], p)
        before = _files(p)
        with monkeypatch.context() as m:
            if way == "zarr":
                m.setattr(st, "_append_plain", lambda *a: False)
            with pytest.raises(ValueError,
                               match=r"every time-dim array of the store \['score', 'value'\], got \['value'\]"):
                st.append_day(p, {"value": good["value"]}, days[1]["time"].values)
            with pytest.raises(ValueError, match=r"value must be \(4, 6, 5\) after 4 stored steps; got \(3, 6, 5\)"):
                st.append_day(p, {"value": good["value"][:3], "score": good["score"]}, days[1]["time"].values)
            with pytest.raises(ValueError, match="not after the store's last time"):
                st.append_day(p, good, days[0]["time"].values)
            with pytest.raises(ValueError, match="not exact in the store's units"):
                st.append_day(p, good, days[1]["time"].values + np.timedelta64(1, "s"))
        assert _files(p) == before

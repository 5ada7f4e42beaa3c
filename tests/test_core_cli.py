"""``cityvitals compute``: feeds on disk -> Zarr readable with xarray.open_zarr."""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

from engine import Catalog, City
from engine.cli import compute


def test_compute_writes_zarr_equal_to_replay(tmp_path, capsys):
    from engine.core import Engine
    from engine.feeds import synthetic_feeds

    cat = Catalog.load()
    city = City.synthetic(seed=0)
    feeds = synthetic_feeds(city, cat, "2020-02-01", "2020-02-01 01:00")
    folder = tmp_path / "feeds"
    folder.mkdir()
    for kind in ("events", "readings", "snapshots"):
        f = feeds.frame(kind)
        if len(f):
            f.to_parquet(folder / f"{kind}_1.parquet")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    compute.register(sub)
    args = parser.parse_args(["compute", str(folder), "--start", "2020-02-01 00:15", "--end", "2020-02-01 01:00",
                              "--out", str(tmp_path / "run.zarr"), "--chunk", "3"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "4 cycles" in out and "quarantined" in out
    ds = xr.open_zarr(tmp_path / "run.zarr")
    assert ds.value.shape == (4, len(cat), 300)
    want = Engine(city, cat).replay(feeds, "2020-02-01 00:15", "2020-02-01 01:00")
    assert np.array_equal(ds.value.values, want.value.values, equal_nan=True)
    assert list(ds.indicator.values[:2]) == list(want.indicator.values[:2])

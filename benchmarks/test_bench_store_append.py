"""A run's day appended to ``values.zarr``: :func:`engine.scenario.store.append_day` at the demo's size.

Engine: ``append_day`` of one hourly day (24 stored steps x 2,926 indicators x 300 neighbourhoods,
``value`` and ``score`` float32) to a store :func:`~engine.scenario.store.create_store` made:
the direct file path (:func:`~engine.scenario.store._append_plain`: each chunk encoded with
the array's compressor, blosc-lz4 without shuffle, and written to its file; the metadata
rewritten once), as the run's writer thread does every day. Peer: zarr's own path
(:func:`~engine.scenario.store._append_zarr`: ``resize`` and a slice assignment per array, then
``consolidate_metadata``), which must write the same files with the same bytes. Each timed
round appends the next day to the group's own store (a day's work does not depend on the days
before it: whole chunks of one day, metadata of a fixed size).

The day: like the demo's hourly days, about half of the rows NaN (indicators a neighbourhood
does not have, windows not yet full) and values that repeat from one hour to the next (levels,
shares, slow sums), so blosc-lz4 finds matches as it does on the run's data; random floats
would only measure an incompressible copy.

CI size (``--benchmark-disable``, one untimed run): 44 neighbourhoods instead of 300 (the same
chunking along time and indicators, one region chunk either way): every assertion runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import engine_bench, peer_bench

GROUP = "store-append-day-300"
SIZE = "one hourly day, 24 steps x 2926 indicators x 300 neighbourhoods, value and score float32"


def _day(rng, n_reg: int, steps: int = 24) -> dict:
    ni = 2926
    level = np.round(rng.gamma(2.0, 50.0, size=(1, ni, n_reg)), 1).astype(np.float32)
    value = np.repeat(level, steps, axis=0)
    moves = rng.random((steps, ni, n_reg)) < 0.3                  # 30 % of the hours move
    value[moves] += np.round(rng.normal(0, 5, size=int(moves.sum())), 1).astype(np.float32)
    score = np.round(rng.random((steps, ni, n_reg)), 3).astype(np.float32)
    missing = rng.random((1, ni, n_reg)) < 0.5                    # whole series missing
    value[np.broadcast_to(missing, value.shape)] = np.nan
    score[np.broadcast_to(missing, score.shape)] = np.nan
    return {"value": value, "score": score}


@pytest.fixture(scope="module")
def days(ci_size):
    rng = np.random.default_rng(5)
    n_reg = 44 if ci_size else 300
    return _day(rng, n_reg), _day(rng, n_reg)


def _new_store(path, day: dict):
    import pandas as pd
    import xarray as xr

    from engine.scenario.store import create_store

    n_t, ni, nr = day["value"].shape
    times = pd.date_range("2020-02-23 01:00", periods=n_t, freq="1h").values
    ds = xr.Dataset({k: (("time", "indicator", "region"), v) for k, v in day.items()},
                    coords={"time": times, "indicator": [f"i{k:04d}" for k in range(ni)],
                            "region": [f"N{k:04d}" for k in range(nr)]}, attrs={"days": 1})
    create_store(ds, path)
    return times


class _Days:
    """The next day's times for a store, a day after the last appended."""

    def __init__(self, times):
        self.times = np.asarray(times)
        self.n = 0

    def next(self):
        self.n += 1
        return self.times + np.timedelta64(self.n, "D")


def _files(root) -> dict:
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _bench(benchmark, tmp_path, days, fn, name):
    first, day = days
    path = tmp_path / name
    clock = _Days(_new_store(path, first))
    benchmark.pedantic(lambda: fn(path, day, clock.next(), {"days": clock.n + 1}), rounds=8, iterations=1,
                       warmup_rounds=1)


def test_store_append_day_engine(benchmark, tmp_path, days):
    from engine.scenario.store import _append_plain, append_day

    engine_bench(benchmark, GROUP, bytes_touched=int(sum(a.nbytes for a in days[1].values())),
                 size=SIZE + ", direct file path")
    _bench(benchmark, tmp_path, days, append_day, "direct")
    # the run's store takes the direct path (append_day falls back to zarr without a word)
    clock = _Days(_new_store(tmp_path / "check", days[0]))
    assert _append_plain(tmp_path / "check", days[1], clock.next(), {"days": 2})


def test_store_append_day_zarr_peer(benchmark, tmp_path, days):
    from engine.scenario.store import _append_plain, _append_zarr

    peer_bench(benchmark, GROUP, scale=1.0, size=SIZE + ", zarr's own path")
    _bench(benchmark, tmp_path, days, _append_zarr, "zarr")
    # the same day by both paths: the same files, byte for byte
    for name, fn in (("a", _append_plain), ("b", _append_zarr)):
        clock = _Days(_new_store(tmp_path / name, days[0]))
        fn(tmp_path / name, days[1], clock.next(), {"days": 2})
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []

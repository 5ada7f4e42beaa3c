"""The step's work outside the stage kernels (``Engine.step``): the dispatcher the threaded drivers
share (``_run_all``: the calling thread works with the pool), the records' keys split over threads
(``_record_keys``), the level's labels kept per engine (``Engine._level``) and the count rings'
widening bound for one bucket (``Engine._most_per_cell``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import engine.core.engine as core_engine
from engine import Catalog, City
from engine.core import Engine

from core_reference import random_steps

C = 900 * 10**9
K0 = 1580515200000000000 // C


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=3, neighbourhoods=37, streets=2, population=120_000)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_run_all_runs_every_call_once_with_the_caller_working(size):
    """Each call runs exactly once; with a pool of ``size`` threads, ``size`` threads run them
    together, the caller one of them (a barrier of ``size`` parties passes only if ``size`` calls
    run at once, and the pool lends ``size - 1`` threads)."""
    pool = core_engine._thread_pool(size, f"test-run-all-{size}")
    ran = []
    lock = threading.Lock()
    barrier = threading.Barrier(size, timeout=20)

    def call(i):
        with lock:
            ran.append((i, threading.current_thread().name))
        if i < size:  # the first ``size`` calls meet: as many threads at once
            barrier.wait()

    core_engine._run_all(pool, [(call, i) for i in range(3 * size + 1)])
    assert sorted(i for i, _ in ran) == list(range(3 * size + 1))
    names = {n for _, n in ran}
    assert threading.current_thread().name in names
    assert len(names) == size


def test_run_all_waits_for_every_call_before_raising_the_first_error():
    pool = core_engine._thread_pool(2, "test-run-all-err")
    done = []

    def call(i):
        if i in (1, 4):
            raise ValueError(f"call {i}")
        threading.Event().wait(0.01)
        done.append(i)

    with pytest.raises(ValueError, match="call 1"):
        core_engine._run_all(pool, [(call, i) for i in range(7)])
    assert sorted(done) == [0, 2, 3, 5, 6]


@pytest.mark.parametrize("threads", [2, 3])
def test_record_keys_split_with_the_caller_equals_one_call(city, catalog, monkeypatch, threads):
    """``_record_keys`` split in ``threads`` parts (the last on the calling thread) writes what one
    ``kernels.record_keys`` call writes (a step of random records)."""
    steps = random_steps(city, catalog, K0, 4, seed=31)
    rec = steps[-1][1]
    eng = Engine(city, catalog)
    monkeypatch.setattr(core_engine, "PREPARE_PARALLEL_MIN", 10**9)
    one = eng._prepare(rec)
    monkeypatch.setattr(core_engine, "_n_threads", lambda: threads)
    monkeypatch.setattr(core_engine, "PREPARE_PARALLEL_MIN", 2)
    got = eng._prepare(rec)
    for g in one:
        for c in one[g]:
            assert np.array_equal(got[g][c], one[g][c], equal_nan=True), (g, c)


def test_level_labels_kept_and_rebuilt_for_another_region_table(city, catalog):
    from engine.core.rollup import level_groups

    eng = Engine(city, catalog)
    for level in (None, "street", "district"):
        lv, g, labels = eng._level(level)
        want_g, want_labels, _ = level_groups(city, lv)
        assert labels == want_labels
        assert (g is None) == (lv == city.levels[0]) and (g is None or np.array_equal(g, want_g))
        assert eng._level(level)[2] is labels  # kept
    regions = city.regions
    try:
        city.regions = regions.rename(index=lambda x: f"{x}-x")
        assert eng._level(None)[2] == [f"{x}-x" for x in regions.index]
    finally:
        city.regions = regions
    assert eng._level(None)[2] == [str(x) for x in regions.index]


def test_most_per_cell_one_bucket_equals_the_keyed_count(city, catalog):
    """The one-bucket path (a count of the regions) gives the largest (bucket, region) count, as the
    keyed count does; several buckets still take the keyed count."""
    eng = Engine(city, catalog)
    rng = np.random.default_rng(7)
    nreg = city.n_regions
    for nb in (1, 1, 2, 5):
        n = 500
        bucket = K0 + rng.integers(0, nb, n).astype(np.int64)
        region = rng.integers(0, nreg, n).astype(np.int32)
        region[:40] = 3  # one region far ahead
        g = dict(bucket=np.sort(bucket), region=region, off=np.array([0, n], np.int64))
        keys = (g["bucket"] - g["bucket"].min()) * nreg + region
        want = int(np.unique(keys, return_counts=True)[1].max())
        assert eng._most_per_cell(g) == want
    g = dict(bucket=np.full(10, K0, np.int64), region=np.arange(10, dtype=np.int32), off=np.array([2, 2], np.int64))
    assert eng._most_per_cell(g) == 0

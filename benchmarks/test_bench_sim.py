"""Simulator groups, 1.1 million residents, 300 neighbourhoods, 120 days.

Group "simulator" -- the epidemic step:

``test_sim_epidemic_numba`` (engine) runs :func:`engine.sim.simulate` in mean-field mode (so it is
deterministic) on ``City.synthetic()`` with a reopening timeline; ``test_sim_epidemic_numpy``
(peer) runs the same step with the plain-numpy reference kernel of ``tests/sim_reference.py``. The
peer runs the first 20 of the 120 days (``scale=6``: the step costs the same every day) and its
state must equal the engine's on those days. Under ``--benchmark-disable`` both run once.

Group "simulator-feeds" -- ``test_sim_full_run_all_feeds``: the epidemic plus every feed of
``indicators/feeds.toml`` at 15-minute cycles, streamed day by day (rows counted, not kept);
``extra_info["rows"]`` holds the rows generated per feed, ``extra_info`` also the wall and CPU seconds of the
epidemic and of the feeds (``*_cpu_s``: ``time.process_time``, all threads) and the load average. Target
(issue 6): <= 5 s on 2 cores.

Group "simulator-ensemble" (heavy) -- ``ensemble`` of ``CITYVITALS_SIM_SEEDS`` (default 20)
stochastic seeds on a running ``LocalCluster`` of processes: the engine uses 2 workers, the peer
1 worker (``scale=1``), so the engine/peer ratio of the report is 1 / speed-up; the engine also
stores ``speedup`` (peer median / engine median) when the peer ran first in the session.

CI size (``--benchmark-disable``, one untimed run) of the first two groups: 21 days instead of
120 (the peer's 20 days inside them): every lever of the timeline (2020-02-01, the stages of
02-10 .. 02-16, 02-17) and three whole weeks of every feed; every assertion runs (the shape,
the residents conserved, the peer's state and infections, all 40 feeds producing rows).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

GROUP = "simulator"
FEEDS_GROUP = "simulator-feeds"
ENSEMBLE_GROUP = "simulator-ensemble"
DAYS, PEER_DAYS = 120, 20
DAYS_CI = 21                       # under --benchmark-disable (see above)
SEEDS = int(os.environ.get("CITYVITALS_SIM_SEEDS", "20"))
_ENSEMBLE_TIMES: dict = {}


@pytest.fixture(scope="module")
def setup():
    from engine.city import City
    from engine.sim import MobilityParams, Scenario, compile_city

    city = City.synthetic(seed=0, neighbourhoods=300, streets=13, population=1_100_000)

    def scenario(days):
        sc = Scenario("2020-02-01", days, initial_infections=200, mode="mean_field")
        sc.at("2020-02-01", sector_share=0.2, schools=False, other=0.5, masks=0.8)
        sc.stages([("2020-02-10", "2020-02-16", {"sector_share": 0.5, "venue_cap": 0.5})])
        sc.at("2020-02-17", sector_share=0.9, venue_cap=0.75)
        return sc

    arrays = compile_city(city, MobilityParams())
    return city, arrays, scenario


@pytest.fixture(scope="module")
def days(ci_size):
    """The simulated days of the first two groups: :data:`DAYS`, or :data:`DAYS_CI` untimed."""
    return DAYS_CI if ci_size else DAYS


def _bytes_touched(arrays, days, substeps=4):
    state = arrays.n.size * 6 * 8
    links = (arrays.work_indices.size + arrays.visit_indices.size) * (8 + 8 + 8)
    return int(days * substeps * (2 * state + 2 * links))


def _size(arrays, days):
    return (f"{int(arrays.n.sum()):,} residents, {arrays.n_regions} neighbourhoods, {arrays.n_venues} venues, "
            f"{arrays.work_indices.size:,} commute links, {days} days x 4 sub-steps")


def test_sim_epidemic_numba(benchmark, setup, days):
    from engine.sim import Scenario, simulate

    city, arrays, scenario = setup
    sc = scenario(days)
    simulate(city, Scenario("2020-02-01", 2, mode="mean_field"), arrays=arrays)   # compile outside the timing
    engine_bench(benchmark, GROUP, bytes_touched=_bytes_touched(arrays, days), size=_size(arrays, days))
    benchmark.extra_info.update(residents=int(arrays.n.sum()), regions=arrays.n_regions, days=days)
    res = benchmark.pedantic(simulate, args=(city, sc), kwargs={"arrays": arrays}, rounds=3, iterations=1)
    assert res.state.shape == (days, 300, 16, 6)
    np.testing.assert_allclose(res.state.sum(axis=3), np.broadcast_to(arrays.n, res.state.shape[:3]))


def test_sim_epidemic_numpy(benchmark, setup, days):
    from engine.sim import simulate
    from sim_reference import epidemic_day_ref

    city, arrays, scenario = setup
    peer_bench(benchmark, GROUP, scale=days / PEER_DAYS, size=_size(arrays, PEER_DAYS))
    benchmark.extra_info.update(residents=int(arrays.n.sum()), regions=arrays.n_regions, days=PEER_DAYS)
    res = benchmark.pedantic(simulate, args=(city, scenario(PEER_DAYS)),
                             kwargs={"arrays": arrays, "kernel": epidemic_day_ref}, rounds=1, iterations=1)
    engine = simulate(city, scenario(days), arrays=arrays)
    assert_same(engine.state[:PEER_DAYS], res.state, rtol=1e-9, atol=1e-9)
    assert_same(engine.new_infections[:PEER_DAYS], res.new_infections, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------ all feeds
def _run_with_feeds(city, sc, arrays, times=None):
    """Epidemic, then every feed day by day (rows counted); ``times`` receives the wall and CPU
    seconds (``time.process_time``: all threads, user + system) of the two parts."""
    from engine.sim import simulate

    w0, c0 = time.perf_counter(), time.process_time()
    res = simulate(city, sc, arrays=arrays)
    w1, c1 = time.perf_counter(), time.process_time()
    rows: dict = {}
    for day in res.feeds_by_day():
        for f, n in day.rows_per_feed().items():
            rows[f] = rows.get(f, 0) + n
    w2, c2 = time.perf_counter(), time.process_time()
    if times is not None:
        times.update(epidemic_s=round(w1 - w0, 3), feeds_s=round(w2 - w1, 3), epidemic_cpu_s=round(c1 - c0, 3),
                     feeds_cpu_s=round(c2 - c1, 3), cpu_s=round(c2 - c0, 3))
    return res, rows


def test_sim_full_run_all_feeds(benchmark, setup, days):
    from engine.sim import Scenario, simulate

    city, arrays, scenario = setup
    warm = simulate(city, Scenario("2020-02-01", 2, mode="mean_field"), arrays=arrays)   # compile outside
    next(warm.feeds_by_day())
    res, rows = _run_with_feeds(city, scenario(days).head(2), arrays)
    per_row = 8 + 8 + 2 + 2 + 1                                      # time, value, emitter, item, feed codes
    total = int(sum(rows.values()) * days / 2)
    engine_bench(benchmark, FEEDS_GROUP, bytes_touched=_bytes_touched(arrays, days) + total * per_row,
                 size=_size(arrays, days) + f", all 40 feeds at 15-min cycles (~{total / 1e6:.0f} M records)")
    t0 = time.perf_counter()
    times: dict = {}
    res, rows = benchmark.pedantic(_run_with_feeds, args=(city, scenario(days), arrays, times), rounds=1,
                                   iterations=1)
    benchmark.extra_info.update(residents=int(arrays.n.sum()), regions=arrays.n_regions, days=days,
                                rows=dict(sorted(rows.items())), total_rows=int(sum(rows.values())),
                                wall_s=round(time.perf_counter() - t0, 3), load=round(os.getloadavg()[0], 2),
                                **times)
    assert len(rows) == 40 and res.state.shape[0] == days


# ------------------------------------------------------------------------------ ensemble speed-up
@pytest.fixture(scope="module")
def ensemble_setup(setup):
    from engine.sim import Scenario

    city, arrays, _ = setup
    sc = Scenario("2020-02-01", DAYS, initial_infections=200, mode="stochastic")
    sc.at("2020-02-01", sector_share=0.2, schools=False, other=0.5, masks=0.8)
    sc.at("2020-02-17", sector_share=0.9, venue_cap=0.75)
    return city, sc


def _ensemble_bench(benchmark, ensemble_setup, workers):
    from distributed import Client, LocalCluster

    from engine.sim import ensemble
    from engine.sim.ensemble import WORKER_ENV

    city, sc = ensemble_setup
    seeds = list(range(SEEDS))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=WORKER_ENV) as cluster, Client(cluster) as c:
        ensemble(city, sc.head(3), seeds[:workers], client=c)           # import + compile on every worker
        ds = benchmark.pedantic(ensemble, args=(city, sc, seeds), kwargs={"client": c}, rounds=1, iterations=1)
    assert ds.sizes["seed"] == SEEDS
    benchmark.extra_info.update(seeds=SEEDS, workers=workers, days=DAYS)
    _ENSEMBLE_TIMES[workers] = benchmark.stats.stats.median if getattr(benchmark, "stats", None) else None


@pytest.mark.heavy
def test_sim_ensemble_1_worker(benchmark, ensemble_setup):
    peer_bench(benchmark, ENSEMBLE_GROUP, scale=1.0, size=f"{SEEDS} seeds x {DAYS} days, 1 worker")
    _ensemble_bench(benchmark, ensemble_setup, 1)


@pytest.mark.heavy
def test_sim_ensemble_2_workers(benchmark, ensemble_setup):
    from engine.sim import compile_city

    city, _ = ensemble_setup
    arr_bytes = _bytes_touched(compile_city(city), DAYS)
    engine_bench(benchmark, ENSEMBLE_GROUP, bytes_touched=SEEDS * arr_bytes,
                 size=f"{SEEDS} seeds x {DAYS} days, 2 workers")
    _ensemble_bench(benchmark, ensemble_setup, 2)
    one, two = _ENSEMBLE_TIMES.get(1), _ENSEMBLE_TIMES.get(2)
    if one and two:
        benchmark.extra_info["speedup"] = round(one / two, 3)

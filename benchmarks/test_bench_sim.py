"""Simulator group: the epidemic step, 1.1 million residents, 300 neighbourhoods, 120 days.

``test_sim_epidemic_numba`` (engine) runs :func:`engine.sim.simulate` in mean-field mode (so it is
deterministic) on ``City.synthetic()`` with a reopening timeline; ``test_sim_epidemic_numpy``
(peer) runs the same step with the plain-numpy reference kernel of ``tests/sim_reference.py``. The
peer runs the first 20 of the 120 days (``scale=6``: the step costs the same every day) and its
state must equal the engine's on those days. Under ``--benchmark-disable`` both run once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

GROUP = "simulator"
DAYS, PEER_DAYS = 120, 20


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


def _bytes_touched(arrays, days, substeps=4):
    state = arrays.n.size * 6 * 8
    links = (arrays.work_indices.size + arrays.visit_indices.size) * (8 + 8 + 8)
    return int(days * substeps * (2 * state + 2 * links))


def _size(arrays, days):
    return (f"{int(arrays.n.sum()):,} residents, {arrays.n_regions} neighbourhoods, {arrays.n_venues} venues, "
            f"{arrays.work_indices.size:,} commute links, {days} days x 4 sub-steps")


def test_sim_epidemic_numba(benchmark, setup):
    from engine.sim import Scenario, simulate

    city, arrays, scenario = setup
    sc = scenario(DAYS)
    simulate(city, Scenario("2020-02-01", 2, mode="mean_field"), arrays=arrays)   # compile outside the timing
    engine_bench(benchmark, GROUP, bytes_touched=_bytes_touched(arrays, DAYS), size=_size(arrays, DAYS))
    benchmark.extra_info.update(residents=int(arrays.n.sum()), regions=arrays.n_regions, days=DAYS)
    res = benchmark.pedantic(simulate, args=(city, sc), kwargs={"arrays": arrays}, rounds=3, iterations=1)
    assert res.state.shape == (DAYS, 300, 16, 6)
    np.testing.assert_allclose(res.state.sum(axis=3), np.broadcast_to(arrays.n, res.state.shape[:3]))


def test_sim_epidemic_numpy(benchmark, setup):
    from engine.sim import simulate
    from sim_reference import epidemic_day_ref

    city, arrays, scenario = setup
    peer_bench(benchmark, GROUP, scale=DAYS / PEER_DAYS, size=_size(arrays, PEER_DAYS))
    benchmark.extra_info.update(residents=int(arrays.n.sum()), regions=arrays.n_regions, days=PEER_DAYS)
    res = benchmark.pedantic(simulate, args=(city, scenario(PEER_DAYS)),
                             kwargs={"arrays": arrays, "kernel": epidemic_day_ref}, rounds=1, iterations=1)
    engine = simulate(city, scenario(DAYS), arrays=arrays)
    assert_same(engine.state[:PEER_DAYS], res.state, rtol=1e-9, atol=1e-9)
    assert_same(engine.new_infections[:PEER_DAYS], res.new_infections, rtol=1e-9, atol=1e-9)

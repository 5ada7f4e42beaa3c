"""Batch replay: 7 days at 15-minute cycles (672 cycles), 300 neighbourhoods, full catalog.

The engine replays a realistic load (see ``benchmarks/test_bench_cycle.py``) and returns the
(time, indicator, region) matrix. The peer is the pandas reference of ``tests/core_reference.py``
on a sample of indicators over the first 4 cycles, scaled to 672 cycles and the whole catalog
(its cost per cycle grows with the history, so the scaled figure understates it); it must equal
the engine's values on those cycles. Two engine figures: into a fresh output (the 2.4 GB
float32 result's first-touch page faults included: what a caller of ``replay`` without ``out``
gets), and into a reused one (``replay(out=...)``). Neither includes loading the kernels from
numba's cache (an untimed 2-cycle replay in the data fixture does that first).
With more than one numba thread (the default on a multi-core machine) the engine replays on its
shares driver (``Engine._run_shares``: each thread runs every cycle for its own share of the
bases); ``NUMBA_NUM_THREADS=1`` times the serial kernel.

CI size (``--benchmark-disable``, one untimed run): the same 672 cycles (every window of the
catalog, 7 days the longest, fills and slides) of a city of 44 neighbourhoods, 2 streets and
161,000 residents (the same ~3,700 residents a neighbourhood: the same records a region and
bucket) instead of 300; the same driver (shares: both sizes are far below
``PARALLEL_MIN_VALUES``) in several kernel calls (``REPLAY_CHUNK_BYTES``). Every assertion runs
(the output's shape, the reused buffer, the pandas peer's values).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

C = 900 * 10**9
K0 = 1580515200000000000 // C
CYCLES = 672
GROUP = "batch-replay-300"
CITY = dict(neighbourhoods=300, streets=13, population=1_100_000)
CITY_CI = dict(neighbourhoods=44, streets=2, population=161_000)      # under --benchmark-disable


@pytest.fixture(scope="module")
def data(ci_size):
    from engine import Catalog, City
    from engine.core import Engine
    from engine.core.synthetic import synthetic_records

    cat = Catalog.load()
    city = City.synthetic(seed=0, **(CITY_CI if ci_size else CITY))
    rec = synthetic_records(city, cat, K0, CYCLES, seed=0)
    # untimed warm-up (a 2-cycle replay): loads the kernels from numba's cache (~1.7 s CPU in a
    # fresh process) and starts the driver's threads, which the first timed test would pay otherwise
    Engine(city, cat).replay(rec, K0 * C, (K0 + 1) * C)
    return cat, city, rec


def test_replay_300_engine(benchmark, data):
    from engine.core import Engine

    cat, city, rec = data
    probe = Engine(city, cat)
    engine_bench(benchmark, GROUP, bytes_touched=CYCLES * probe.plan.cycle_bytes(),
                 size=f"{CYCLES} cycles x {city.n_regions} regions x {len(cat)} indicators")
    benchmark.extra_info["state_bytes"] = probe.state.nbytes

    def run(eng):
        return eng.replay(rec, K0 * C, (K0 + CYCLES - 1) * C)

    # the engine (plan compile, ~0.5 s) is built untimed: the figure is the replay itself
    ds = benchmark.pedantic(run, setup=lambda: ((Engine(city, cat),), {}), rounds=1, iterations=1)
    assert ds.value.shape == (CYCLES, len(cat), city.n_regions)


def test_replay_300_engine_reused_output(benchmark, data):
    """The same replay into an output buffer that an earlier replay filled (``replay(out=...)``,
    as a caller replaying period by period reuses one buffer): no first-touch page faults of a
    fresh 2.4 GB output in the timing (on this VM 2-9 s of system time). Same group (the pandas
    peer pairs with both): next to the fresh-output figure it says what the faults cost."""
    from engine.core import Engine

    cat, city, rec = data
    probe = Engine(city, cat)
    engine_bench(benchmark, GROUP, bytes_touched=CYCLES * probe.plan.cycle_bytes(),
                 size=f"{CYCLES} cycles x {city.n_regions} regions x {len(cat)} indicators, output reused")
    buf = probe.output_buffer(K0 * C, (K0 + CYCLES - 1) * C)
    buf.fill(0.0)  # the earlier replay's pages: mapped (untimed)

    def run(eng):
        return eng.replay(rec, K0 * C, (K0 + CYCLES - 1) * C, out=buf)

    ds = benchmark.pedantic(run, setup=lambda: ((Engine(city, cat),), {}), rounds=1, iterations=1)
    assert ds.value.shape == (CYCLES, len(cat), city.n_regions) and np.shares_memory(ds.value.values, buf)


def test_replay_300_pandas(benchmark, data):
    from core_reference import reference, sample_rows
    from engine.core import Engine

    cat, city, rec = data
    n = 4
    rows = sample_rows(cat, per_combo=1)
    steps = []
    for i in range(n):
        k = K0 + i
        b = lambda t: -((-t) // C) == k  # noqa: E731
        steps.append((k, rec.select(b(rec.ev_time), b(rec.rd_time), b(rec.sn_time))))
    peer_bench(benchmark, GROUP, scale=len(cat) / len(rows) * CYCLES / n,
               size=f"{n} cycles x {city.n_regions} regions x {len(rows)} indicators (scaled)")
    ref = benchmark.pedantic(reference, args=(city, cat, steps), kwargs={"rows": rows}, rounds=1, iterations=1)
    eng = Engine(city, cat, dtype="float64")
    got = eng.replay(rec.select(rec.ev_time <= (K0 + n - 1) * C, rec.rd_time <= (K0 + n - 1) * C,
                                rec.sn_time <= (K0 + n - 1) * C), K0 * C, (K0 + n - 1) * C).value.values
    sel = np.array(sorted(rows))
    assert_same(got[:, sel], np.stack([r[0] for r in ref])[:, sel], rtol=1e-9)

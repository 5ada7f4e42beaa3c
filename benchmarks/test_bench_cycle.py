"""Cycle refresh: one cycle of the full catalog (2,926 indicators) for every region.

``cycle-refresh-300``: ``City.synthetic()`` (300 neighbourhoods, 1.1 million residents);
``cycle-refresh-6000`` (heavy): 6,000 neighbourhoods, 20 million residents. The engine has a day of
history (replayed in the fixture) and each benchmarked call steps one new cycle with a realistic
load (events at 20 per 10k residents per day, one reading per sensor/site and metric, 2 % of the
snapshot entities reporting one field with a new value; 8 such cycles in rotation. Before
2026-11-29 one cycle was repeated, and it was ``synthetic_records``' first cycle, in which every
snapshot entity reports every field: 50x the snapshot records of the stated load, all unchanged
after the first step). ``bytes`` is :meth:`engine.core.Plan.cycle_bytes` for the benchmark's own
load (``records`` / ``snap_records``: the mean events + readings and snapshot records of the 8
rotated cycles): per series of each block of running sums the leaving and entering ring cells and
the sums read and written back; every base's ring row of the cycle written (a snapshot base's
previous row read too, and one changed-series flag byte a series); the running extremes and
sorted windows updated; the snapshot members re-read, an expected figure ``16 B x sum_s m_s (1 -
(1 - q) ** m_s)`` over the snapshot series (``m_s`` members; ``q`` = snapshot records / snapshot
cells: a series is aggregated again when one of its members' cells changed; every record taken
to change its cell, so high by the ~15 % of synthetic values equal to the cell's last: 7.8 % of
the members a cycle at 300 regions, 7.3 % at 6,000, for this benchmark's ~312 / ~5,618 snapshot
records a cycle; not checked against a count at this load, docs/core.md); the
records read (24 B an event or reading, 52 B a snapshot record with its cell); the float32 output
written once. At 6,000 regions the 6,000 benchmark also records ``issue_bytes``, the issue's own
scale: 40 B a series for every non-derived value (indicator rows computed from records, times the
regions), with ``issue_floor_s`` (those bytes at the session's measured bandwidth) and
``issue_floor_ratio`` (the median over it), next to ``floor_s`` / ``floor_ratio`` of ``bytes``; and
``issue_kernel_s`` / ``issue_kernel_ratio``: the issue's floor read directly, the time of its own
reference kernel (:func:`engine.bench.floor.series_update`: 40 B of float32 state a series read and
updated in place, over the same series, best of 5 in this session). The bandwidth counts bytes read
plus written, and a series' 40 B read and written back are 80 B of that traffic, so
``issue_floor_s`` (40 B at the bandwidth) is about half the kernel's time: the kernel is the reading
that does not depend on that choice.

The peer (300 only) is the plain pandas reference of ``tests/core_reference.py`` (filter the raw
records of each window, group by region) on a sample of indicators covering every
(kind, aggregation, window, normalisation, filter) combination over the last 2 hours of records,
scaled to the whole catalog; its values must equal the engine's.

CI size of the 300 group (``--benchmark-disable``, one untimed run): 44 neighbourhoods, 2
streets, 161,000 residents (the same ~3,700 a neighbourhood: the same load a region and cycle)
after the same day of history, the same 8 rotated cycles and the peer's 8 cycles: every
assertion runs (the step's shape, the peer's values on every sampled combination).
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
HISTORY = 96
ROTATE = 8
#: bytes a series the issue's floor counts (issue 3)
ISSUE_SERIES_BYTES = 40


def _setup(n, streets, pop):
    from engine import Catalog, City
    from engine.core import Engine
    from engine.core.synthetic import synthetic_records

    cat = Catalog.load()
    city = City.synthetic(seed=0, neighbourhoods=n, streets=streets, population=pop)
    eng = Engine(city, cat)
    hist = synthetic_records(city, cat, K0, HISTORY, seed=0)
    eng.replay(hist, K0 * C, (K0 + HISTORY - 1) * C, level="district")  # warm the windows (small output)
    # ROTATE cycles of load after the history (synthetic_records' first cycle, where every snapshot
    # entity reports every field, is left out): each step takes the next one, shifted in time, so
    # consecutive steps report different snapshot entities and values
    more = synthetic_records(city, cat, K0 + HISTORY - 1, ROTATE + 1, seed=1)
    ones = []
    for j in range(ROTATE):
        b = lambda t: -((-t) // C) == K0 + HISTORY + j  # noqa: E731
        ones.append(more.select(b(more.ev_time), b(more.rd_time), b(more.sn_time)))
    return cat, city, eng, ones


def _load(ones):
    """(events + readings, snapshot records) a cycle, the mean over the rotated cycles ``ones``."""
    n = len(ones)
    return (sum(len(o.ev_time) + len(o.rd_time) for o in ones) / n, sum(len(o.sn_time) for o in ones) / n)


def _cycle_bytes(eng, ones) -> int:
    rec, snap = _load(ones)
    return eng.plan.cycle_bytes(records=rec, snap_records=snap)


def _stepper(eng, ones):
    """One step per call; the records of the ``j``-th rotated cycle, shifted to the step's cycle.
    The shifted times go into three arrays kept per rotated cycle (the harness, not the engine:
    fresh ones cost ~0.8 ms a 6,000-region step, twenty-first session; the engine keeps no
    reference to a step's records, and the records it gets are the same)."""
    state = {"k": K0 + HISTORY}
    base = K0 + HISTORY
    kept = [tuple(np.empty_like(getattr(o, n)) for n in ("ev_time", "rd_time", "sn_time")) for o in ones]

    def run():
        k = state["k"]
        j = (k - base) % len(ones)
        one = ones[j]
        shift = (k - base - j) * C
        rec = one.select()
        ev, rd, sn = kept[j]
        np.add(one.ev_time, shift, out=ev)
        np.add(one.rd_time, shift, out=rd)
        np.add(one.sn_time, shift, out=sn)
        rec.ev_time, rec.rd_time, rec.sn_time = ev, rd, sn
        state["k"] = k + 1
        return eng.step(rec, at=k * C)

    return run


@pytest.fixture(scope="module")
def small(ci_size):
    return _setup(44, 2, 161_000) if ci_size else _setup(300, 13, 1_100_000)


def test_cycle_300_engine(benchmark, small):
    cat, city, eng, ones = small
    engine_bench(benchmark, "cycle-refresh-300", bytes_touched=_cycle_bytes(eng, ones),
                 size=f"{city.n_regions} regions x {len(cat)} indicators")
    benchmark.extra_info["state_bytes"] = eng.state.nbytes
    ds = benchmark(_stepper(eng, ones))
    assert ds.value.shape == (len(cat), city.n_regions)


def test_cycle_300_pandas(benchmark, small):
    from core_reference import reference, sample_rows
    from engine.core import Engine
    from engine.core.synthetic import synthetic_records

    cat, city, _, _ = small
    rows = sample_rows(cat, per_combo=1)
    recs = synthetic_records(city, cat, K0, 8, seed=2)
    steps = []
    for i in range(8):
        k = K0 + i
        b = lambda t: -((-t) // C) == k  # noqa: E731
        steps.append((k, recs.select(b(recs.ev_time), b(recs.rd_time), b(recs.sn_time))))
    eng = Engine(city, cat, dtype="float64")
    for k, r in steps:
        got = eng.step(r, at=k * C).value.values
    peer_bench(benchmark, "cycle-refresh-300", scale=len(cat) / len(rows) / len(steps),
               size=f"{city.n_regions} regions x {len(rows)} indicators x {len(steps)} cycles (scaled)")
    ref = benchmark.pedantic(reference, args=(city, cat, steps), kwargs={"rows": rows}, rounds=1, iterations=1)
    sel = np.array(sorted(rows))
    assert_same(got[sel], ref[-1][0][sel], rtol=1e-9)


@pytest.mark.heavy
def test_cycle_6000_engine(benchmark, bandwidth_floor):
    cat, city, eng, ones = _setup(6000, 120, 20_000_000)
    engine_bench(benchmark, "cycle-refresh-6000", bytes_touched=_cycle_bytes(eng, ones),
                 size=f"6000 regions x {len(cat)} indicators")
    info = benchmark.extra_info
    info["state_bytes"] = eng.state.nbytes
    # the issue's own scale: 40 B a series for each non-derived value (rows computed from records)
    info["issue_bytes"] = issue = ISSUE_SERIES_BYTES * len(eng.plan.ind_row) * eng.plan.n_regions
    info["issue_floor_s"] = issue / bandwidth_floor.bandwidth_Bps
    # the issue's floor read directly: its reference kernel (40 B of state a series read and
    # updated) over the same series, timed in this session (best of 5, wall, every numba thread)
    from engine.bench.floor import measure_series_update
    info["issue_kernel_s"] = measure_series_update(len(eng.plan.ind_row) * eng.plan.n_regions, ISSUE_SERIES_BYTES)
    ds = benchmark.pedantic(_stepper(eng, ones), rounds=5, iterations=1)
    assert ds.value.shape == (len(cat), 6000)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats:
        info["issue_floor_ratio"] = stats.stats.median / info["issue_floor_s"]
        info["issue_kernel_ratio"] = stats.stats.median / info["issue_kernel_s"]

"""A whole alert part (docs/alerts.md, fourteenth session, Left 4): the runner's ``_alert_day`` for
one part of a day, 12 cycles of 2,926 indicators x 300 neighbourhoods, through
:func:`engine.alerts.cycle.alert_part` (split, family control and fold in one kernel a cycle, the
state machine of both levels, one SQLite batch for the part, a fresh manager each round). The
input is the demo's shape: 86 % of the scores NaN (no opinion), the rest the null, statistical
detectors only, and five subjects held at a tiny tail in 20 neighbourhoods for a few cycles
(pending, firing, resolving).

Peer (group ``alert-part-300``): the same part in plain numpy, cycle by cycle: tails with the
looks, the median split of the rows that move together, Bonferroni over the cycle's family,
``np.fmax.reduceat`` to subjects, and the state machine as whole-array operations
(``_state_peer`` of ``test_bench_alerts.py``), neighbourhood level; it must count the same
pending, fired and resolved series each cycle as the engine's ``cycles`` table.
"""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pandas as pd
import pytest

from engine.alerts import AlertManager
from engine.alerts.common import MIN_REGIONS
from engine.alerts.state import EV_FIRED, EV_PENDING, EV_RESOLVED, SeriesState
from engine.bench.harness import engine_bench, peer_bench

GROUP = "alert-part-300"
N_CYC = 12
T0 = pd.Timestamp("2020-03-02")


@pytest.fixture(scope="module")
def part():
    from engine.catalog import Catalog
    from engine.city import City

    cat = Catalog.load()
    city = City.synthetic(seed=0)
    rng = np.random.default_rng(3)
    shape = (N_CYC, len(cat), city.n_regions)
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.86] = np.nan
    d = rng.integers(1, 4, shape).astype(np.int8)                     # seasonal, count, cusum
    am = AlertManager(cat, city, store=":memory:")
    drive = np.flatnonzero(am.fold.drives)
    subj = am.fold.row_of[drive]
    rows = drive[np.unique(subj, return_index=True)[1][[5, 60, 200, 333, 500]]]
    s[2:7, rows[:, None], np.arange(20)] = np.float32(1 - 1e-7)
    s[3:9, rows[1], 20:25] = np.float32(1 - 1e-7)
    times = pd.DatetimeIndex([T0 + k * pd.Timedelta("15min") for k in range(N_CYC)])
    am.close()
    return dict(cat=cat, city=city, s=s, d=d, times=times)


def _engine(part, tmp_path):
    from engine.alerts.cycle import alert_part

    n = [0]

    def setup():
        n[0] += 1
        am = AlertManager(part["cat"], part["city"], store=os.path.join(tmp_path, f"a{n[0]}.sqlite"))
        return (am,), {}

    def go(am):
        alert_part(am, part["times"], part["s"], part["d"], part["s"], [], 0)
        am.close()
    return setup, go


def _counts(path):
    c = sqlite3.connect(path)
    rows = c.execute("SELECT pending, fired, resolved FROM cycles WHERE level = 'neighbourhood' ORDER BY t").fetchall()
    c.close()
    return np.array(rows, np.int64)


def _peer_part(part, fold, cfg, pending):
    """The part in plain numpy; returns the neighbourhood level's pending / fired / resolved counts a cycle."""
    from benchmarks.test_bench_alerts import _state_peer

    drives = fold.drives
    n_reg = part["s"].shape[2]
    st = SeriesState.empty(fold.n_rows, n_reg)
    per_warn = (1.0 - cfg.fire_level) / cfg.family_alpha
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in range(N_CYC):
            s = part["s"][c][drives].astype(np.float64)
            p = np.minimum(1.0, cfg.looks * (1.0 - s))                # statistical codes only
            ok = ~np.isnan(p)
            n_ok, n_low = ok.sum(1), (p < 0.5).sum(1)
            split = (n_ok >= MIN_REGIONS) & (2 * n_low > n_ok)
            med = np.full(len(p), np.nan)
            if split.any():
                med[split] = np.nanmedian(p[split], axis=1)
            f = np.where(split, np.clip(2.0 * med, 1e-12, 1.0), 1.0)
            rel = p / f[:, None]
            local = np.where(rel >= 1.0, 0.0, 1.0 - rel).astype(np.float32)
            local[np.isnan(p)] = np.nan
            fam = int(ok.sum() + (n_ok >= MIN_REGIONS).sum())          # neighbourhood cells + district column
            q = np.float32(fam * per_warn) * (np.float32(1) - local)
            adj = np.where(q >= 1, np.float32(0), np.float32(1) - q)
            # to subjects: the members of each subject row are consecutive in fold.members
            pos = np.searchsorted(np.flatnonzero(drives), fold.members)
            folded = np.fmax.reduceat(adj[pos], fold.ptr[:-1], axis=0)
            t = int(part["times"][c].value // 10**9)
            _, ev = _state_peer(st, folded.reshape(-1), t, cfg, pending)
            out.append([int(((ev & e) != 0).sum()) for e in (EV_PENDING, EV_FIRED, EV_RESOLVED)])
    return np.array(out, np.int64)


def test_alert_part_engine(benchmark, part, tmp_path):
    setup, go = _engine(part, tmp_path)
    go(*setup()[0])                                                    # compile, caches
    engine_bench(benchmark, GROUP, bytes_touched=int(part["s"].size * 9),
                 size=f"{N_CYC} cycles x 2926 indicators x 300 regions, SQLite store, fresh manager")
    benchmark.pedantic(go, setup=setup, rounds=5, iterations=1)
    got = _counts(os.path.join(tmp_path, "a1.sqlite"))
    assert got[:, 0].sum() >= 5 and got[:, 1].sum() >= 5 and got[:, 2].sum() >= 5


def test_alert_part_peer(benchmark, part, tmp_path):
    am = AlertManager(part["cat"], part["city"], store=os.path.join(tmp_path, "e.sqlite"))
    fold, cfg = am.fold, am.config
    pending = am.row_pending if am.row_pending is not None else np.full(fold.n_rows, cfg.pending_cycles, np.int64)
    setup, go = _engine(part, tmp_path)
    go(*setup()[0])
    engine = _counts(os.path.join(tmp_path, "a1.sqlite"))
    am.close()
    peer = _peer_part(part, fold, cfg, pending)
    assert np.array_equal(engine, peer), (engine.tolist(), peer.tolist())
    peer_bench(benchmark, GROUP, size=f"{N_CYC} cycles x 2926 indicators x 300 regions, numpy")
    benchmark.pedantic(_peer_part, args=(part, fold, cfg, pending), rounds=3, iterations=1)

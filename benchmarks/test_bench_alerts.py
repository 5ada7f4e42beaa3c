"""The runner's per-cycle alert preparation at 300 neighbourhoods: common-mode split + family control.

Engine: :func:`engine.alerts.common.common_mode` on the rows that drive alerts, then
:func:`engine.alerts.multiplicity.family_adjust` (Bonferroni over the cycle's tests), on one
cycle of 2,926 indicators x 300 neighbourhoods (scores uniform in 0..1, 30 % NaN: the null, where
about half of the rows need their median). Peer: the same in plain numpy (``np.nanmedian`` per
row, vectorised scaling), on the same input, which must give the same local and district scores.
A second engine benchmark times the whole cycle as the runner makes it (``_alert_day`` for one
cycle: split, family control and ``AlertManager.process_cycle`` on both levels, SQLite included),
``alert-cycle-kernel-300`` the same cycle through :func:`engine.alerts.cycle.alert_part` (one
kernel for split, family control and fold). ``alert-state-300``: the state machine
(``lifecycle.step``) on 877,800 series against the same rules in whole-array numpy, checked equal
cycle by cycle.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager
from engine.alerts.common import common_mode
from engine.alerts.fold import Fold
from engine.alerts.multiplicity import family_adjust
from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.levels import DETECTOR_CODES, WARN

GROUP = "alert-split-300"
TH = DETECTOR_CODES["threshold"]


@pytest.fixture(scope="module")
def cycle():
    from engine.catalog import Catalog

    cat = Catalog.load()
    rng = np.random.default_rng(0)
    shape = (len(cat), 300)
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.3] = np.nan
    det = rng.integers(1, 5, shape).astype(np.int8)       # some catalog thresholds among them
    val = rng.random(shape, dtype=np.float32)
    fold = Fold([i["id"] for i in cat.indicators], "subject", [i.get("window") for i in cat.indicators])
    return dict(cat=cat, s=s, det=det, val=val, rows=fold.drives, cfg=AlertConfig())


def _engine(c):
    cfg = c["cfg"]
    out = [None, {}]

    def go():
        out[0] = common_mode(c["s"], c["det"], c["val"], looks=cfg.looks, out=out[0], rows=c["rows"])
        local, district, d_det, _ = out[0]
        family_adjust(local, c["det"], district, d_det, c["rows"], alpha=cfg.family_alpha, buf=out[1])
        return local, district
    return go


def _peer(c):
    """Plain numpy: tails, looks, the median split per row, then Bonferroni over the family."""
    cfg = c["cfg"]
    s, det, rows = c["s"].astype(np.float64), c["det"], c["rows"]
    stat = det != TH
    p = 1.0 - s
    p = np.where(stat, np.minimum(1.0, cfg.looks * p), p)
    ok = ~np.isnan(p)
    n_ok, n_low = ok.sum(1), (p < 0.5).sum(1)
    split = rows & (n_ok >= 5) & (2 * n_low > n_ok)
    med = np.full(len(p), np.nan)
    med[split] = np.nanmedian(p[split], axis=1)
    district = np.where(n_ok >= 5, 0.5, np.nan)
    district[split] = 1.0 - med[split]
    f = np.clip(2.0 * med, 1e-12, 1.0)
    rel = np.where(split[:, None], p / np.where(split, f, 1.0)[:, None], p)
    local = np.where(rel >= 1.0, 0.0, 1.0 - rel)
    local[~rows] = np.nan
    district[~rows] = np.nan
    # the family: statistical scores of the driving rows (the district row's code is not a threshold
    # in this input: it carries the detector of the neighbourhood nearest the median, taken from det)
    return local, district


def test_alert_split_engine(benchmark, cycle):
    n = cycle["s"].size
    _engine(cycle)()                                  # compile
    engine_bench(benchmark, GROUP, bytes_touched=int(n * (4 + 1 + 4) + 2 * n * 4),
                 size="2926 indicators x 300 regions, one cycle")
    local, district = benchmark(_engine(cycle))
    stat = cycle["det"] != TH
    assert np.nanmax(local[stat]) < WARN               # the null: nothing survives the family control


def test_alert_split_peer(benchmark, cycle):
    peer_bench(benchmark, GROUP, size="2926 indicators x 300 regions, one cycle")
    local, district = benchmark(_peer, cycle)
    # the engine before the family step equals the peer (the family step is checked against its
    # reference in tests/test_alerts_multiplicity.py)
    cfg = cycle["cfg"]
    e_local, e_district, _, _ = common_mode(cycle["s"], cycle["det"], cycle["val"], looks=cfg.looks, rows=cycle["rows"])
    assert_same(e_local.astype(np.float64), local.astype(np.float32).astype(np.float64), rtol=0, atol=3e-7)
    assert_same(e_district[:, 0].astype(np.float64), district.astype(np.float32).astype(np.float64), rtol=0, atol=3e-7)


@pytest.mark.parametrize("path", ["steps", "kernel"])
def test_alert_cycle_engine(benchmark, cycle, tmp_path, path):
    """One cycle of the runner's alert part at 300 neighbourhoods, the manager's SQLite writes included:
    ``steps`` (group ``alert-cycle-300``) in three steps (``common_mode``, ``family_adjust``,
    ``process_cycle``), ``kernel`` (``alert-cycle-kernel-300``) as the runner does it,
    :func:`engine.alerts.cycle.alert_part` (split, family control and fold in one kernel;
    ``process_folded``). Fresh null scores every cycle (8 cycles drawn once, in turn),
    statistical detectors only.
    """
    import pandas as pd

    from engine.alerts.cycle import _alert_part_steps, alert_part
    from engine.city import City

    run = alert_part if path == "kernel" else _alert_part_steps
    city = City.synthetic(seed=0)
    am = AlertManager(cycle["cat"], city, store=os.path.join(tmp_path, "a.sqlite"))
    rng = np.random.default_rng(1)
    shape = (8,) + cycle["s"].shape
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.3] = np.nan
    d = rng.integers(1, 4, shape).astype(np.int8)
    buf: list = []
    k = [0]
    t0 = pd.Timestamp("2020-03-02")

    def go():
        c = k[0] % 8
        run(am, pd.DatetimeIndex([t0 + k[0] * pd.Timedelta("15min")]), s[c:c + 1], d[c:c + 1], s[c:c + 1], buf, 0)
        k[0] += 1

    go()                                               # compile, first cycle
    engine_bench(benchmark, "alert-cycle-kernel-300" if path == "kernel" else "alert-cycle-300",
                 bytes_touched=int(cycle["s"].size * 9),
                 size="2926 indicators x 300 regions + district, one cycle, SQLite store")
    benchmark.pedantic(go, rounds=24, iterations=1)
    assert am.store.list_alerts() == []                # the null alerts nothing
    am.close()

# ---------------------------------------------------------------------------------------------
# The alert state machine (``lifecycle.step``) at 2,926 indicators x 300 neighbourhoods (877,800
# series), one cycle, against the same rules written with whole-array numpy operations.

STATE_GROUP = "alert-state-300"


def _state_peer(st, s, t, cfg, pending):
    """The state machine of :mod:`engine.alerts.lifecycle`, one cycle, as numpy array operations.

    The rules of :func:`engine.alerts.lifecycle.step_reference` applied with masks over every
    series at once (what a numpy user would write). Returns ``(idx, events)`` like ``step``.
    """
    from engine.alerts.state import (
        CRITICAL, EV_CANCELLED, EV_FIRED, EV_FLAP_END, EV_FLAP_START, EV_PENDING, EV_RESOLVED, EV_SEV_DOWN,
        EV_SEV_UP, FIRING, INACTIVE, PENDING, WARN,
    )
    n_pend = np.repeat(pending, st.shape[1])
    nan = np.isnan(s)
    st.nan_run[:] = np.where(nan, np.minimum(st.nan_run.astype(np.int32) + 1, 32767), 0)
    s0 = st.state.copy()
    ev = np.zeros(st.n, np.uint8)
    with np.errstate(invalid="ignore"):
        lv = np.where(s >= cfg.critical_level, CRITICAL, np.where(s >= cfg.fire_level, WARN, 0)).astype(np.int8)
        below = s < cfg.clear_level

    def leave(mask, event):
        ev[mask] |= event
        st.state[mask], st.count[mask], st.severity[mask], st.since[mask] = INACTIVE, 0, 0, t

    if cfg.stale_cycles > 0:
        stale = nan & (s0 != INACTIVE) & (st.nan_run >= cfg.stale_cycles)
        leave(stale & (s0 == FIRING), EV_RESOLVED)
        leave(stale & (s0 == PENDING), EV_CANCELLED)
    ok = ~nan
    start = ok & (s0 == INACTIVE) & (lv > 0)
    st.count[start], st.severity[start], st.since[start], st.started[start] = 1, lv[start], t, t
    now = start & (n_pend <= 1)
    st.state[now], st.count[now] = FIRING, 0
    ev[now] |= EV_FIRED
    st.state[start & ~now] = PENDING
    ev[start & ~now] |= EV_PENDING
    pend = ok & (s0 == PENDING)
    up = pend & (lv > 0)
    st.count[up] += 1
    st.severity[up] = np.maximum(st.severity[up], lv[up])
    fire = up & (st.count >= n_pend)
    st.state[fire], st.count[fire], st.since[fire] = FIRING, 0, t
    ev[fire] |= EV_FIRED
    leave(pend & (lv == 0), EV_CANCELLED)
    firing = ok & (s0 == FIRING)
    st.count[firing & ~below] = 0
    st.count[firing & below] += 1
    res = firing & below & (st.count >= cfg.resolve_cycles)
    leave(res, EV_RESOLVED)
    held = firing & ~res
    sev_up = held & (lv == CRITICAL) & (st.severity == WARN)
    sev_down = held & (lv == 0) & (st.severity == CRITICAL)
    st.severity[sev_up], st.severity[sev_down] = CRITICAL, WARN
    ev[sev_up] |= EV_SEV_UP
    ev[sev_down] |= EV_SEV_DOWN
    changed = (ev & (EV_FIRED | EV_RESOLVED)) != 0
    moving = (st.flap_bits != 0) | changed
    mask = np.uint64((1 << cfg.flap_window) - 1)
    st.flap_bits[moving] = ((st.flap_bits[moving] << np.uint64(1)) & mask) | changed[moving].astype(np.uint64)
    if cfg.flap_threshold > 0:
        c = np.bitwise_count(st.flap_bits)
        on = moving & (st.flapping == 0) & (c >= cfg.flap_threshold)
        off = moving & (st.flapping == 1) & (c <= cfg.flap_clear)
        st.flapping[on], st.flapping[off] = 1, 0
        ev[on] |= EV_FLAP_START
        ev[off] |= EV_FLAP_END
    idx = np.flatnonzero(ev)
    return idx, ev[idx]


@pytest.fixture(scope="module")
def state_cycles(cycle):
    """16 cycles of scores at 2,926 x 300: the null (uniform, 30 % NaN) with a block of series
    held high for a few cycles (pending, firing, severity changes, resolving, a stale run)."""
    rng = np.random.default_rng(5)
    shape = (16,) + cycle["s"].shape
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.3] = np.nan
    s[2:9, 100:140, :50] = np.float32(0.995)
    s[4:6, 100:120, :50] = np.float32(0.9995)
    s[9:13, 130:140, :50] = np.nan
    cfg = AlertConfig(stale_cycles=3)
    pending = np.full(shape[1], cfg.pending_cycles, np.int64)
    pending[::7] = 1
    return s.reshape(16, -1), cfg, pending


def _state_runner(state_cycles, cycle, fn):
    from engine.alerts.state import SeriesState

    s, cfg, pending = state_cycles
    st = SeriesState.empty(*cycle["s"].shape)
    ws: dict = {}
    k = [0]

    def go():
        c = k[0]
        k[0] += 1
        t = 1_580_515_200 + 900 * c
        if fn is None:
            from engine.alerts.lifecycle import step
            return step(st, s[c % 16], t, cfg, ws, pending)
        return fn(st, s[c % 16], t, cfg, pending)
    return go, st


def test_alert_state_engine(benchmark, cycle, state_cycles):
    go, st = _state_runner(state_cycles, cycle, None)
    go()                                               # compile
    n = st.n
    # per series: the score and the state bytes read, the touched ones written back
    engine_bench(benchmark, STATE_GROUP, bytes_touched=int(n * (4 + 1 + 2 + 1 + 2 + 8 + 8 + 8 + 1)),
                 size="2926 indicators x 300 regions (877,800 series), one cycle")
    benchmark.pedantic(go, rounds=24, iterations=1)


def test_alert_state_peer(benchmark, cycle, state_cycles):
    from engine.alerts.lifecycle import step
    from engine.alerts.state import SeriesState

    # the peer and the kernel agree, cycle after cycle, on every state array and event
    s, cfg, pending = state_cycles
    a, b = SeriesState.empty(*cycle["s"].shape), SeriesState.empty(*cycle["s"].shape)
    kinds = 0
    for c in range(16):
        t = 1_580_515_200 + 900 * c
        i1, e1 = step(a, s[c], t, cfg, None, pending)
        i2, e2 = _state_peer(b, s[c], t, cfg, pending)
        assert np.array_equal(i1, i2) and np.array_equal(e1, e2)
        kinds |= int(np.bitwise_or.reduce(e1)) if len(e1) else 0
        for name in SeriesState.fields:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert kinds & 0b111111 == 0b111111                 # pending, fired, resolved, cancelled, sev up / down
    go, _ = _state_runner(state_cycles, cycle, _state_peer)
    peer_bench(benchmark, STATE_GROUP, size="2926 indicators x 300 regions (877,800 series), one cycle")
    benchmark.pedantic(go, rounds=24, iterations=1)

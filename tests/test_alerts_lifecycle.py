"""The per-series state machine: compiled kernel == plain-Python reference; the rules one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine import levels
from engine.alerts.config import AlertConfig
from engine.alerts.lifecycle import step, step_reference
from engine.alerts.state import (
    CRITICAL, EV_CANCELLED, EV_FIRED, EV_FLAP_END, EV_FLAP_START, EV_PENDING, EV_RESOLVED, EV_SEV_DOWN, EV_SEV_UP,
    FIRING, INACTIVE, PENDING, WARN, SeriesState,
)

KERNEL_FIELDS = ("state", "count", "severity", "nan_run", "since", "started", "flap_bits", "flapping")


def run(cfg, seq, fn=step):
    """Run one series through a score sequence; returns [(events, state, severity)] per cycle."""
    st_ = SeriesState.empty(1, 1)
    out = []
    for t, s in enumerate(seq):
        idx, ev = fn(st_, np.array([[s]], np.float32), t, cfg)
        out.append((int(ev[0]) if len(ev) else 0, int(st_.state[0]), int(st_.severity[0])))
    return out


# ---------------------------------------------------------------- kernel == reference
SCORES = st.sampled_from([np.nan, 0.1, 0.94, 0.96, 0.991, 0.998, 0.9995, 1.0])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_ind=st.integers(1, 3), n_reg=st.integers(1, 4), cycles=st.integers(1, 40),
       pending=st.integers(1, 4), resolve=st.integers(1, 3), stale=st.integers(0, 5),
       window=st.integers(1, 63), flap=st.integers(0, 5))
def test_kernel_equals_reference_on_random_sequences(data, n_ind, n_reg, cycles, pending, resolve, stale, window, flap):
    cfg = AlertConfig(pending_cycles=pending, resolve_cycles=resolve, stale_cycles=stale, flap_window=window,
                      flap_threshold=flap, flap_clear=max(0, flap - 2) if flap else 0)
    a, b = SeriesState.empty(n_ind, n_reg), SeriesState.empty(n_ind, n_reg)
    ws = {}
    for t in range(cycles):
        score = np.array(data.draw(st.lists(SCORES, min_size=n_ind * n_reg, max_size=n_ind * n_reg)),
                         np.float32).reshape(n_ind, n_reg)
        ia, ea = step(a, score, 1000 + 900 * t, cfg, ws)
        ib, eb = step_reference(b, score, 1000 + 900 * t, cfg)
        assert ia.tolist() == ib.tolist() and ea.tolist() == eb.tolist(), f"cycle {t}"
        for f in KERNEL_FIELDS:
            assert np.array_equal(getattr(a, f), getattr(b, f)), f"field {f} at cycle {t}"


def test_kernel_equals_reference_on_a_large_random_block():
    rng = np.random.default_rng(5)
    cfg = AlertConfig(pending_cycles=2, flap_window=8, flap_threshold=3, flap_clear=1)
    a, b = SeriesState.empty(20, 30), SeriesState.empty(20, 30)
    for t in range(30):
        score = (1 - rng.random((20, 30)) ** 3 * 0.2).astype(np.float32)   # many values near the levels
        score[rng.random((20, 30)) < 0.05] = np.nan
        ia, ea = step(a, score, t, cfg)
        ib, eb = step_reference(b, score, t, cfg)
        assert ia.tolist() == ib.tolist() and ea.tolist() == eb.tolist()
    for f in KERNEL_FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert (a.state == FIRING).any() and (a.flapping == 1).any()


def test_kernel_equals_reference_with_quiet_blocks_and_a_few_hot_series():
    """The kernel skips blocks of 256 series where nothing can happen: hot series at block edges,
    in the last (short) block, flapping ones whose register keeps a block hot after they settle."""
    rng = np.random.default_rng(11)
    cfg = AlertConfig(pending_cycles=2, flap_window=6, flap_threshold=3, flap_clear=1, stale_cycles=3)
    a, b = SeriesState.empty(19, 101), SeriesState.empty(19, 101)        # 1,919 series: 7 full blocks + 127
    hot = np.array([0, 255, 256, 511, 700, 1023, 1024, 1800, 1918])
    for t in range(18):
        score = (rng.random(a.n) * 0.9).astype(np.float32)
        score[rng.random(a.n) < 0.4] = np.nan
        score[hot] = np.where(rng.random(hot.size) < 0.6, np.float32(0.9995), np.float32(0.5))
        if t > 12:
            score[hot] = np.nan                                          # stale: cancelled / resolved
        ia, ea = step(a, score, t, cfg)
        ib, eb = step_reference(b, score, t, cfg)
        assert ia.tolist() == ib.tolist() and ea.tolist() == eb.tolist()
        assert set(ia.tolist()) <= set(hot.tolist())
    for f in KERNEL_FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert (a.flap_bits != 0).any() and (b.nan_run > 0).sum() > 0.3 * a.n


def test_kernel_equals_reference_with_pending_cycles_per_row():
    rng = np.random.default_rng(11)
    cfg = AlertConfig(pending_cycles=3, flap_window=8, flap_threshold=3, flap_clear=1)
    pending = rng.integers(1, 5, 12)
    a, b = SeriesState.empty(12, 9), SeriesState.empty(12, 9)
    fired = np.zeros(12, int)
    for t in range(40):
        score = (1 - rng.random((12, 9)) ** 3 * 0.1).astype(np.float32)
        score[rng.random((12, 9)) < 0.05] = np.nan
        ia, ea = step(a, score, t, cfg, pending=pending)
        ib, eb = step_reference(b, score, t, cfg, pending=pending)
        assert ia.tolist() == ib.tolist() and ea.tolist() == eb.tolist(), f"cycle {t}"
        fired += np.bincount(ia[(ea & EV_FIRED) > 0] // 9, minlength=12)
    for f in KERNEL_FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert fired[pending == 1].sum() > 0 and fired[pending > 1].sum() > 0


@pytest.mark.parametrize("fn", [step, step_reference])
def test_a_row_with_pending_1_fires_at_once_the_others_wait(fn):
    st_ = SeriesState.empty(2, 1)
    cfg = AlertConfig(pending_cycles=3)
    evs = [fn(st_, np.array([[0.995], [0.995]], np.float32), t, cfg, pending=np.array([1, 3]))[1].tolist()
           for t in range(3)]
    assert evs == [[EV_FIRED, EV_PENDING], [], [EV_FIRED]]


@pytest.mark.parametrize("bad", [np.array([1]), np.array([0, 2]), np.array([1.0, 2.0])])
def test_pending_per_row_is_checked(bad):
    with pytest.raises(ValueError, match="pending must be 2 integers >= 1"):
        step(SeriesState.empty(2, 3), np.zeros((2, 3), np.float32), 0, AlertConfig(), pending=bad)


# ---------------------------------------------------------------- the rules
@pytest.mark.parametrize("fn", [step, step_reference])
def test_pending_needs_n_cycles_then_fires(fn):
    out = run(AlertConfig(pending_cycles=3), [0.995, 0.995, 0.995, 0.995], fn)
    assert [o[0] for o in out] == [EV_PENDING, 0, EV_FIRED, 0]
    assert [o[1] for o in out] == [PENDING, PENDING, FIRING, FIRING]


def test_pending_is_cancelled_when_the_score_drops_before_n_cycles():
    out = run(AlertConfig(pending_cycles=3), [0.995, 0.995, 0.98, 0.995])
    assert [o[0] for o in out] == [EV_PENDING, 0, EV_CANCELLED, EV_PENDING]
    assert out[-1][1] == PENDING


def test_pending_cycles_one_fires_at_once():
    assert run(AlertConfig(pending_cycles=1), [0.995])[0] == (EV_FIRED, FIRING, WARN)


def test_resolves_only_below_clear_hysteresis():
    cfg = AlertConfig(pending_cycles=1)
    # 0.96 and 0.985 lie between CLEAR (0.95) and WARN (0.99): still firing
    out = run(cfg, [0.995, 0.985, 0.96, 0.951, 0.949])
    assert [o[1] for o in out] == [FIRING] * 4 + [INACTIVE]
    assert out[-1][0] == EV_RESOLVED
    assert levels.CLEAR < levels.WARN


def test_resolve_cycles_needs_consecutive_cycles_below_clear():
    out = run(AlertConfig(pending_cycles=1, resolve_cycles=2), [0.995, 0.5, 0.97, 0.5, 0.5])
    assert [o[1] for o in out] == [FIRING, FIRING, FIRING, FIRING, INACTIVE]


def test_severity_warn_then_critical_then_back_to_warn():
    out = run(AlertConfig(pending_cycles=1), [0.995, 0.9995, 0.9992, 0.985, 0.999])
    assert [o[2] for o in out] == [WARN, CRITICAL, CRITICAL, WARN, CRITICAL]
    assert [o[0] for o in out] == [EV_FIRED, EV_SEV_UP, 0, EV_SEV_DOWN, EV_SEV_UP]


def test_severity_at_fire_is_the_highest_seen_while_pending():
    out = run(AlertConfig(pending_cycles=3), [0.995, 0.9999, 0.995])
    assert out[-1] == (EV_FIRED, FIRING, CRITICAL)


def test_nan_holds_state_and_goes_stale():
    cfg = AlertConfig(pending_cycles=1, stale_cycles=3)
    out = run(cfg, [0.995, np.nan, np.nan, np.nan])
    assert [o[1] for o in out] == [FIRING, FIRING, FIRING, INACTIVE] and out[-1][0] == EV_RESOLVED
    never = run(AlertConfig(pending_cycles=1, stale_cycles=0), [0.995] + [np.nan] * 20)
    assert never[-1][1] == FIRING


def test_flap_damping_starts_and_ends():
    cfg = AlertConfig(pending_cycles=1, flap_window=6, flap_threshold=3, flap_clear=1)
    out = run(cfg, [0.995, 0.5, 0.995, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    evs = [o[0] for o in out]
    assert evs[2] == EV_FIRED | EV_FLAP_START          # third change within 6 cycles
    assert any(e & EV_FLAP_END for e in evs[4:])
    start = evs.index(EV_FIRED | EV_FLAP_START)
    end = next(i for i, e in enumerate(evs) if e & EV_FLAP_END)
    assert end > start
    assert run(AlertConfig(pending_cycles=1, flap_threshold=0), [0.995, 0.5] * 5)[-1][0] == EV_RESOLVED


def test_step_rejects_wrong_shapes_and_types():
    s = SeriesState.empty(2, 3)
    with pytest.raises(ValueError, match=r"score has shape \(3, 2\), expected \(2, 3\)"):
        step(s, np.zeros((3, 2), np.float32), 0, AlertConfig())
    with pytest.raises(ValueError, match="float array"):
        step(s, np.zeros((2, 3), np.int64), 0, AlertConfig())


def test_series_state_round_trip():
    s = SeriesState.empty(2, 2)
    step(s, np.full((2, 2), 0.999, np.float32), 7, AlertConfig(pending_cycles=1))
    t = SeriesState.from_arrays((2, 2), s.to_arrays())
    assert all(np.array_equal(getattr(s, f), getattr(t, f)) for f in SeriesState.fields)
    with pytest.raises(ValueError, match="state array 'state' has 4 entries, expected 6"):
        SeriesState.from_arrays((2, 3), s.to_arrays())

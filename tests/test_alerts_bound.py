"""The fire-level bound of the lazy fold, the hot rows and the state machine on the fold's rows
(engine/alerts/cycle.py, engine/alerts/lifecycle.py; fifteenth session).

``fold_cycle(..., lazy=True, hot=rows)`` gives exact scores on the hot rows and on every row where
a cell may reach the fire level; elsewhere only NaN or not (``-inf`` for a number). These tests
check that against the full fold on random cycles, that the rows left out really have no cell at
the fire level, that ``_low_cut`` is the exact cut of ``common_mode``'s low tails, and that
``step(..., rows=...)`` and ``hot_rows`` give what the plain machine gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.alerts.config import AlertConfig
from engine.alerts.cycle import _low_cut, fold_cycle
from engine.alerts.lifecycle import hot_rows, step, step_reference
from engine.alerts.state import SeriesState
from engine.catalog import Catalog
from tests.test_alerts_cycle import _fold, _scores


@pytest.fixture(scope="module")
def fold():
    return _fold(Catalog.load())


@pytest.mark.parametrize("looks,scan,method", [(4.0, 68, "bonferroni"), (1.0, 0, "bonferroni"), (2.5, 0, "none"),
                                               (1.0, 30, "none")])
def test_lazy_fold_with_hot_rows_is_exact_where_it_must_be(fold, looks, scan, method):
    rng = np.random.default_rng(int(looks * 10) + scan)
    n_reg = 40
    n_ind = len(fold.drives)
    for cycle in range(6):
        s, det, val = _scores(rng, n_ind, n_reg, 0.6)
        # most rows quiet (below the fire level or NaN), a few cells high, whole rows NaN
        quiet = rng.random(n_ind) < 0.8
        s[quiet] = np.where(np.isnan(s[quiet]), s[quiet], s[quiet] * np.float32(0.5))
        s[rng.random(n_ind) < 0.3] = np.nan
        hot = (rng.random(fold.n_rows) < 0.1).astype(np.uint8)
        full = fold_cycle(fold, s, det, val, looks=looks, method=method, alpha=0.05, scan_tests=scan, buf={})
        ref = [a.copy() for a in full["neighbourhood"]] + [a.copy() for a in full["district"]]
        got = fold_cycle(fold, s, det, val, looks=looks, method=method, alpha=0.05, scan_tests=scan, buf={},
                         lazy=True, hot=hot)
        gs = got["neighbourhood"][0]
        ex = got["exact"].astype(bool)
        assert got["m"] == full["m"]
        for a, b in zip(got["district"], ref[4:]):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
        assert ex[hot.astype(bool)].all()
        # exact rows bit for bit; the others NaN where the fold is NaN, -inf elsewhere, and the
        # fold below the fire level there
        assert np.array_equal(gs[ex].view(np.uint32), ref[0][ex].view(np.uint32))
        cold = ~ex
        assert np.array_equal(np.isnan(gs[cold]), np.isnan(ref[0][cold]))
        assert (gs[cold][~np.isnan(gs[cold])] == -np.inf).all()
        assert not (ref[0][cold] >= np.float32(0.99)).any()
        assert (ref[0] >= np.float32(0.99))[ex].sum() == (ref[0] >= np.float32(0.99)).sum()
        if cycle == 0:
            assert cold.sum() > fold.n_rows // 4 and ex.sum() > hot.sum()    # both kinds of row met
        # fill completes codes, values and leads at cells of exact rows as the full fold has them
        ks = np.flatnonzero(np.repeat(ex, n_reg))[::7]
        got["fill"](ks)
        for a, b in zip(got["neighbourhood"][1:], ref[1:4]):
            assert np.array_equal(a.reshape(-1)[ks].view(np.uint8), b.reshape(-1)[ks].view(np.uint8))


def test_fill_at_a_row_left_out_raises(fold):
    rng = np.random.default_rng(3)
    s, det, val = _scores(rng, len(fold.drives), 20, 0.5)
    s *= np.float32(0.5)
    got = fold_cycle(fold, s, det, val, looks=4.0, buf={}, lazy=True, hot=np.zeros(fold.n_rows, np.uint8))
    g = int(np.flatnonzero((got["exact"] == 0) & ~np.isnan(got["neighbourhood"][0]).all(1))[0])
    k = g * 20 + int(np.flatnonzero(~np.isnan(got["neighbourhood"][0][g]))[0])
    with pytest.raises(AssertionError, match="fold_cells"):
        got["fill"](np.array([k]))


def test_hot_needs_lazy_and_the_right_shape(fold):
    s = np.full((len(fold.drives), 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="lazy"):
        fold_cycle(fold, s, s.astype(np.int8), s, hot=np.zeros(fold.n_rows, np.uint8))
    with pytest.raises(ValueError, match="uint8.*shape \\(3,\\)"):
        fold_cycle(fold, s, s.astype(np.int8), s, lazy=True, hot=np.zeros(3, np.uint8))


@pytest.mark.parametrize("looks", [1.0, 1.5, 2.0, 4.0, 7.3, 100.0])
def test_low_cut_is_common_modes_low_tail(looks):
    rng = np.random.default_rng(int(looks * 7))
    cut = _low_cut(looks)
    x = np.concatenate([rng.random(20_000, dtype=np.float32), np.float32([0.0, 0.5, 1.0, -0.5, 2.0, np.inf, -np.inf]),
                        np.nextafter(cut, np.float32([-1, 2])), [cut]]).astype(np.float32)
    q = np.minimum(1.0, looks * (1.0 - x.astype(np.float64)))
    assert np.array_equal(x > cut, q < 0.5)


def test_step_on_rows_and_hot_rows_give_the_plain_machine():
    rng = np.random.default_rng(11)
    cfg = AlertConfig(pending_cycles=2, flap_window=6, flap_threshold=2, flap_clear=0, stale_cycles=3)
    shape = (37, 23)
    a, b = SeriesState.empty(*shape), SeriesState.empty(*shape)
    ws: dict = {}
    fired = 0
    for t in range(60):
        s = rng.random(shape, dtype=np.float32) * np.float32(0.9)
        hi = rng.random(shape) < 0.004
        s[hi] = np.float32(0.9995)
        if t % 9 in (1, 2, 3):                       # series firing and resolving again and again: flapping
            s[3, 4] = s[10, 0] = s[36, 22] = np.float32(0.9999)
        s[rng.random(shape) < 0.3] = np.nan
        h = hot_rows(a, ws).copy()
        assert np.array_equal(h, ((a.state != 0) | (a.flap_bits != 0)).reshape(shape).any(1).astype(np.uint8))
        rows = (h.astype(bool) | (s >= np.float32(cfg.fire_level)).any(1)).astype(np.uint8)
        i1, e1 = step(a, s, 1000 + t, cfg, ws, rows=rows)
        i2, e2 = step_reference(b, s, 1000 + t, cfg)
        assert np.array_equal(i1, i2) and np.array_equal(e1, e2)
        for f in SeriesState.fields:
            assert np.array_equal(getattr(a, f), getattr(b, f)), f
        fired += int((e1 & 2).astype(bool).sum())
    assert fired >= 3
    a.state[5] = 2                                   # changed outside step: new arrays are read again
    ws2: dict = {}
    assert hot_rows(a, ws2)[0] == 1
    with pytest.raises(ValueError, match="rows must be 37 uint8"):
        step(a, s, 5000, cfg, ws, rows=np.ones(36, np.uint8))

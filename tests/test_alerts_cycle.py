"""The runner's alert cycle in one kernel (engine/alerts/cycle.py) against its three steps.

``fold_cycle`` must give bit for bit what ``common_mode`` + ``family_adjust`` + ``Fold.apply``
give (each of those is checked against a slow reference in its own test file), and
``alert_part`` the same transitions, alerts, notifications and SQLite history as the three
steps through ``process_cycle``.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from engine.alerts import AlertConfig, AlertManager
from engine.alerts.common import common_mode
from engine.alerts.cycle import _alert_part_steps, alert_part, fold_cycle
from engine.alerts.fold import Fold
from engine.alerts.multiplicity import family_adjust
from engine.catalog import Catalog
from engine.city import City
from engine.levels import DETECTOR_CODES, WARN

SEASONAL, THRESHOLD, CLUSTER = DETECTOR_CODES["seasonal"], DETECTOR_CODES["threshold"], DETECTOR_CODES["cluster"]


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def _fold(cat):
    return Fold([i["id"] for i in cat.indicators], "subject", [i.get("window") for i in cat.indicators])


def _scores(rng, n_ind, n_reg, nan_share):
    """Random scores with rows that move together (the median split), tiny tails, exact 0 and 1,
    rows with too few scores, and every detector code (thresholds and clusters among them)."""
    s = rng.random((n_ind, n_reg), dtype=np.float32)
    shift = rng.random(n_ind) < 0.3
    s[shift] = 1 - (1 - s[shift]) * np.float32(0.05)
    tiny = rng.random(s.shape) < 0.01
    s[tiny] = (1.0 - 10.0 ** rng.uniform(-7.5, -2, tiny.sum())).astype(np.float32)
    s[rng.random(s.shape) < 0.005] = 1.0
    s[rng.random(s.shape) < 0.005] = 0.0
    s[rng.random(s.shape) < nan_share] = np.nan
    s[rng.random(n_ind) < 0.05] = np.nan                      # rows without any score
    det = rng.choice(np.array([0, 1, 2, 3, 4, 5, 6], np.int8), s.shape)
    val = rng.random(s.shape, dtype=np.float32)
    val[rng.random(s.shape) < 0.1] = np.nan
    return s, det, val


def _three_steps(fold, s, det, val, looks, method, alpha, scan):
    loc, dist, ddet, dval = common_mode(s, det, val, looks=looks, rows=fold.drives)
    m = family_adjust(loc, det, dist, ddet, fold.drives, method=method, alpha=alpha, scan_tests=scan)
    return m, fold.apply(loc, det, val), fold.apply(dist, ddet, dval), dval


@pytest.mark.parametrize("n_reg,nan_share", [(300, 0.3), (30, 0.9), (7, 0.5), (1, 0.2)])
@pytest.mark.parametrize("scan", [0, 68])
@pytest.mark.parametrize("method", ["bonferroni", "none"])
def test_fold_cycle_equals_the_three_steps_bit_for_bit(catalog, n_reg, nan_share, scan, method):
    fold = _fold(catalog)
    buf = {}
    for seed in range(2):                                        # the second call reuses the buffers
        rng = np.random.default_rng(100 * n_reg + seed)
        s, det, val = _scores(rng, len(catalog), n_reg, nan_share)
        looks, alpha = (4.0, 0.05) if seed == 0 else (1.0, 0.2)
        m, nb, di, dval = _three_steps(fold, s, det, val, looks, method, alpha, scan)
        out = fold_cycle(fold, s, det, val, looks=looks, method=method, alpha=alpha, scan_tests=scan, buf=buf)
        assert out["m"] == m
        for want, got in ((nb, out["neighbourhood"]), (di, out["district"])):
            for a, b in zip(want, got):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert np.array_equal(a, b, equal_nan=True)
        assert np.array_equal(dval, out["district_value"], equal_nan=True)
        # the case is not trivial: split rows, firing-level scores, leads from several members
        # (one region: fewer than min_regions, no district)
        assert np.isfinite(out["district"][0]).any() == (n_reg >= 5) and (out["neighbourhood"][0] >= WARN).any()
        # lazy: the neighbourhood's score alone, its codes, values and leads where they are filled
        lz = {}
        fold_cycle(fold, s, det, val, looks=looks, method=method, alpha=alpha, scan_tests=scan, buf=lz, lazy=True)
        for a in lz["neighbourhood"][1:]:
            a.fill(-7)
        got = fold_cycle(fold, s, det, val, looks=looks, method=method, alpha=alpha, scan_tests=scan, buf=lz,
                         lazy=True)
        assert np.array_equal(got["neighbourhood"][0], nb[0], equal_nan=True) and got["m"] == m
        for want, b in zip(di, got["district"]):
            assert np.array_equal(want, b, equal_nan=True)
        some = np.flatnonzero(rng.random(nb[0].size) < 0.3)
        got["fill"](some)
        for want, b in zip(nb[1:], got["neighbourhood"][1:]):
            assert np.array_equal(want.reshape(-1)[some], b.reshape(-1)[some], equal_nan=True)
            rest = np.setdiff1d(np.arange(b.size), some)
            assert (b.reshape(-1)[rest] == -7).all()
        got["fill"](np.arange(nb[0].size))
        for want, b in zip(nb, got["neighbourhood"]):
            assert np.array_equal(want, b, equal_nan=True)


def test_fold_cycle_a_shared_shift_splits_and_a_lone_tail_survives_the_family(catalog):
    fold = _fold(catalog)
    n_ind = len(catalog)
    s = np.full((n_ind, 30), 0.5, np.float32)
    det = np.full(s.shape, SEASONAL, np.int8)
    val = np.zeros(s.shape, np.float32)
    i = int(np.flatnonzero(fold.drives)[0])
    j = int(np.flatnonzero(fold.drives & (fold.row_of != fold.row_of[i]))[0])   # another subject
    s[i] = np.float32(1 - 1e-4)                                  # the whole district moves
    s[j, 4] = np.float32(1 - 1e-9)                               # one neighbourhood far out
    out = fold_cycle(fold, s, det, val, looks=4.0, alpha=0.05)
    fs, fd, fv, lead = out["neighbourhood"]
    gi, gj = fold.row_of[i], fold.row_of[j]
    assert (fs[gi] < WARN).all()                                 # shared: no neighbourhood stands out
    # split: the district carries the code of the neighbourhood nearest the median (0 when not split)
    assert np.isfinite(out["district"][0][gi, 0]) and out["district"][1][gi, 0] == SEASONAL
    assert fs[gj, 4] >= WARN and lead[gj, 4] == j                # the lone tail, across the family
    m, nb, di, _ = _three_steps(fold, s, det, val, 4.0, "bonferroni", 0.05, 0)
    assert m == out["m"] and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(nb, out["neighbourhood"]))


def test_fold_cycle_bad_arguments_name_the_value(catalog):
    fold = _fold(catalog)
    s = np.full((len(catalog), 5), 0.5, np.float32)
    with pytest.raises(ValueError, match="'bh'"):
        fold_cycle(fold, s, s.astype(np.int8), s, method="bh")
    with pytest.raises(ValueError, match="alpha.*1.5"):
        fold_cycle(fold, s, s.astype(np.int8), s, alpha=1.5)
    with pytest.raises(ValueError, match="looks.*0.5"):
        fold_cycle(fold, s, s.astype(np.int8), s, looks=0.5)
    with pytest.raises(ValueError, match="scan_tests.*-1"):
        fold_cycle(fold, s, s.astype(np.int8), s, scan_tests=-1)
    with pytest.raises(ValueError, match=r"shape \(4, 5\)"):
        fold_cycle(fold, s[:4], s[:4].astype(np.int8), s[:4])
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        fold_cycle(fold, s, s.astype(np.int8), s[:3])


def _tables(path):
    con = sqlite3.connect(path)
    out = {}
    # the wall-clock columns left out (cycles.seconds, outbox.created_at / delivered_at)
    for table, cols in (("transitions", "*"), ("alerts", "*"), ("notifications", "*"), ("acks", "*"),
                        ("cycles", "t, time, level, series, events, pending, cancelled, fired, resolved, notifications"),
                        ("outbox", "seq, notification_id, sink, status, attempts")):
        out[table] = con.execute(f"SELECT {cols} FROM {table} ORDER BY rowid").fetchall()
    con.close()
    return out


def _day(catalog, rng, n_cycles=24, n_reg=30):
    """A day of null scores with planted incidents: a lone strong tail, a district-wide shift,
    a catalog threshold and a scanned cluster, each held for several cycles, then gone."""
    n_ind = len(catalog)
    times = pd.date_range("2020-03-02", periods=n_cycles, freq="15min")
    s = rng.random((n_cycles, n_ind, n_reg), dtype=np.float32)
    s[rng.random(s.shape) < 0.3] = np.nan
    det = rng.choice(np.array([1, 2, 3], np.int8), s.shape)
    val = rng.random(s.shape, dtype=np.float32)
    fold = _fold(catalog)
    drive = np.flatnonzero(fold.drives)
    a, b, c, d = (int(x) for x in drive[[3, 40, 200, 500]])
    s[4:12, a, 7] = np.float32(1 - 1e-9)
    s[6:14, b] = np.float32(1 - 1e-9)
    s[2:9, c, 3], det[2:9, c, 3] = np.float32(0.9995), THRESHOLD
    s[5:15, d, 10:14], det[5:15, d, 10:14] = np.float32(1 - 1e-6), CLUSTER
    return times, s, det, val


@pytest.mark.parametrize("config", [AlertConfig(), AlertConfig(pending_cycles=1, looks=1.0, multiplicity="none"),
                                    AlertConfig(multiplicity="bh"), AlertConfig(alert_per="indicator")],
                         ids=["default", "none", "bh", "per-indicator"])
def test_alert_part_gives_the_same_history_as_the_three_steps(catalog, tmp_path, config):
    city = City.synthetic(seed=1, neighbourhoods=30, streets=6, population=60_000)
    times, s, det, val = _day(catalog, np.random.default_rng(7), n_reg=city.n_regions)
    results = {}
    for name, fn in (("steps", _alert_part_steps), ("kernel", alert_part)):
        am = AlertManager(catalog, city, store=tmp_path / f"{name}.sqlite", config=config)
        buf: list = []
        for k in range(0, len(times), 8):                        # parts of a day, as the runner hands them
            fn(am, times[k:k + 8], s[k:k + 8], det[k:k + 8], val[k:k + 8], buf, 68)
        got = am.store.list_alerts()
        am.close()
        results[name] = (got, _tables(tmp_path / f"{name}.sqlite"))
    assert results["kernel"][0] == results["steps"][0]
    for table, rows in results["steps"][1].items():
        assert results["kernel"][1][table] == rows, table
    fired = {a["indicator"] for a in results["steps"][0]}
    assert len(fired) >= 3 and len(results["steps"][1]["notifications"]) >= 2


def test_process_folded_checks_its_arrays(catalog, tmp_path):
    city = City.synthetic(seed=1, neighbourhoods=6, streets=2, population=20_000)
    am = AlertManager(catalog, city, store=tmp_path / "a.sqlite")
    n, k = am.n_rows, am.n_indicators
    good = (np.full((n, 6), 0.5, np.float32), np.ones((n, 6), np.int8), np.zeros((n, 6), np.float32),
            np.zeros((n, 6), np.int32), np.zeros((k, 6), np.float32))
    am.process_folded(0, {"neighbourhood": good})
    with pytest.raises(ValueError, match="lead, raw_value"):
        am.process_folded(900, {"neighbourhood": good[:3]})
    with pytest.raises(ValueError, match="lead at level 'neighbourhood'.*float32"):
        am.process_folded(900, {"neighbourhood": good[:3] + (good[4], good[4])})
    with pytest.raises(ValueError, match=r"raw_value .*\(5, 6\)"):
        am.process_folded(900, {"neighbourhood": good[:4] + (good[4][:5],)})
    with pytest.raises(ValueError, match="unknown level 'ward'"):
        am.process_folded(900, {"ward": good})
    with pytest.raises(ValueError, match="not after"):
        am.process_folded(0, {"neighbourhood": good})
    am.close()


def test_cycle_times_read_as_to_epoch_reads_them():
    from engine.alerts.config import to_epoch
    from engine.alerts.cycle import _epochs

    for times in (pd.date_range("2020-03-02", periods=5, freq="15min"),
                  pd.date_range("2020-03-02", periods=3, freq="15min", tz="UTC"),
                  pd.date_range("1969-12-31 23:00", periods=3, freq="15min"),
                  pd.DatetimeIndex(["2020-03-02 00:00:00.5", "2020-03-02 00:15:00.25"]),
                  [0, 900, 1800], ["2020-03-02T00:15:00Z"]):
        assert _epochs(times) == [to_epoch(x) for x in times]

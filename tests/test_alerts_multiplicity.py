"""Multiplicity across one cycle's family of tests (engine/alerts/multiplicity.py) and its use by the runner."""

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from alerts_reference import family_adjust_reference
from engine.alerts import AlertConfig, AlertManager
from engine.alerts.multiplicity import family_adjust
from engine.levels import CLEAR, CRITICAL, DETECTOR_CODES, WARN

SEASONAL, THRESHOLD = DETECTOR_CODES["seasonal"], DETECTOR_CODES["threshold"]


def _random_cycle(rng, n_ind=60, n_reg=25):
    s = rng.random((n_ind, n_reg)).astype(np.float32)
    tiny = rng.random(s.shape) < 0.03                      # some very small tails, and exact 1.0
    s[tiny] = (1.0 - 10.0 ** rng.uniform(-7.5, -2, tiny.sum())).astype(np.float32)
    s[rng.random(s.shape) < 0.01] = 1.0
    s[rng.random(s.shape) < 0.1] = np.nan
    det = rng.choice(np.array([1, 2, 3, 4, 5, 6], np.int8), s.shape)
    dist = rng.random((n_ind, 1)).astype(np.float32)
    dist[rng.random(dist.shape) < 0.05] = np.float32(1 - 1e-6)
    dist[rng.random(dist.shape) < 0.1] = np.nan
    ddet = rng.choice(np.array([0, 1, 4], np.int8), dist.shape)
    rows = rng.random(n_ind) < 0.7
    return s, det, dist, ddet, rows


def _same_as_reference(got_pair, ref_pair, method):
    for got, ref in zip(got_pair, ref_pair):
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        ok = ~np.isnan(ref)
        # BH is exact while the adjusted tail is below 10 alpha (score >= 0.9); above, both stay below CLEAR
        exact = ok & ((ref > 0.9) if method == "bh" else ok)
        np.testing.assert_allclose(got[exact], ref[exact].astype(np.float32), rtol=0, atol=2e-7)
        assert np.all(got[ok & ~exact] < CLEAR)


@pytest.mark.parametrize("method", ["bonferroni", "bh", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_the_reference(method, seed):
    rng = np.random.default_rng(seed)
    s, det, dist, ddet, rows = _random_cycle(rng)
    alpha = [0.05, 0.2, 0.01][seed]
    ref_l, ref_d, ref_m = family_adjust_reference(s, det, dist, ddet, rows, method, alpha, WARN, THRESHOLD)
    loc, dis = s.copy(), dist.copy()
    m = family_adjust(loc, det, dis, ddet, rows, method=method, alpha=alpha)
    assert m == ref_m
    _same_as_reference((loc, dis), (ref_l, ref_d), method)
    # rows that drive no alert and catalog thresholds are untouched
    assert np.array_equal(loc[~rows], s[~rows], equal_nan=True)
    th = det == THRESHOLD
    assert np.array_equal(loc[th], s[th], equal_nan=True)


@pytest.mark.parametrize("method", ["bonferroni", "bh"])
@pytest.mark.parametrize("seed", [0, 1])
def test_scans_share_the_family_as_one_test_each(method, seed):
    rng = np.random.default_rng(10 + seed)
    s, det, dist, ddet, rows = _random_cycle(rng)
    cluster = DETECTOR_CODES["cluster"]
    assert (det == cluster).any()
    ref_l, ref_d, ref_m = family_adjust_reference(s, det, dist, ddet, rows, method, 0.05, WARN, THRESHOLD,
                                                  scan_tests=68, scan_share=0.1, cluster_code=cluster)
    loc, dis = s.copy(), dist.copy()
    m = family_adjust(loc, det, dis, ddet, rows, method=method, alpha=0.05, scan_tests=68, scan_share=0.1)
    assert m == ref_m
    _same_as_reference((loc, dis), (ref_l, ref_d), method)
    # a cluster's cells at p = 5e-5: out of reach as ordinary tests, WARN as one of 68 scans
    one = np.full((500, 30), 0.5, np.float32)
    d1 = np.full(one.shape, SEASONAL, np.int8)
    one[3, :3], d1[3, :3] = np.float32(1 - 5e-5), cluster
    a, b = one.copy(), one.copy()
    family_adjust(a, d1, alpha=0.05)
    family_adjust(b, d1, alpha=0.05, scan_tests=68)
    assert (a[3, :3] < WARN).all() and (b[3, :3] >= WARN).all() and (b[3, 3:] == a[3, 3:]).all()


def test_bad_scan_arguments_name_the_value():
    s = np.full((2, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match="scan_tests must be an integer >= 0, got -1"):
        family_adjust(s, np.ones(s.shape, np.int8), scan_tests=-1)
    with pytest.raises(ValueError, match="scan_share must be in"):
        family_adjust(s, np.ones(s.shape, np.int8), scan_tests=3, scan_share=1.5)


def test_null_family_keeps_quiet_and_a_lone_strong_tail_still_warns():
    rng = np.random.default_rng(5)
    shape, warn_raw, warn_adj = (1000, 30), 0, 0
    for _ in range(20):
        s = rng.random(shape).astype(np.float32)       # the null: uniform tails
        warn_raw += int((s >= WARN).sum())
        m = family_adjust(s, np.full(shape, SEASONAL, np.int8), alpha=0.05)
        warn_adj += int((s >= WARN).sum())
    assert m == 30_000
    assert warn_raw > 4000         # ~1 % of 600,000 series-cycles
    assert warn_adj <= 3           # family-wise: P(any WARN in a cycle) <= 0.05
    s = rng.random(shape).astype(np.float32)
    s[3, 4] = np.float32(1 - 1e-7)    # tail 1e-7 * 30,000 = 0.003 <= alpha / 10: critical
    family_adjust(s, np.full(shape, SEASONAL, np.int8), alpha=0.05)
    assert s[3, 4] >= CRITICAL and (s >= WARN).sum() == 1


def test_bh_is_more_lenient_when_many_series_are_abnormal():
    shape = (100, 30)
    s = np.full(shape, 0.5, np.float32)
    s[0, :20] = np.float32(1 - 2e-5)      # 20 series at the same small tail
    b, h = s.copy(), s.copy()
    det = np.full(shape, SEASONAL, np.int8)
    family_adjust(b, det, method="bonferroni", alpha=0.05)
    family_adjust(h, det, method="bh", alpha=0.05)
    assert b[0, :20].max() < WARN <= h[0, :20].min()   # 2e-5 * 3000 = 0.06 > alpha; BH: 0.06 / 20


def test_bad_arguments():
    s = np.zeros((2, 3), np.float32)
    d = np.zeros((2, 3), np.int8)
    with pytest.raises(ValueError, match="'holm'"):
        family_adjust(s, d, method="holm")
    with pytest.raises(ValueError, match="alpha"):
        family_adjust(s, d, alpha=1.5)
    with pytest.raises(ValueError, match="float32"):
        family_adjust(s.astype(np.float64), d)
    with pytest.raises(ValueError, match="multiplicity"):
        AlertConfig(multiplicity="holm")
    with pytest.raises(ValueError, match="family_alpha"):
        AlertConfig(family_alpha=0)
    assert AlertConfig().multiplicity == "bonferroni" and AlertConfig().family_alpha == 0.05


# -- the runner's alert day: planted incident, clean run, audit trail ----------------------------

def _manager(tmp_path, n_ind=120, **cfg):
    from engine.catalog import Catalog
    from engine.city import City

    full = Catalog.load()
    cat = SimpleNamespace(indicators=full.indicators[:n_ind], departments=full.departments, dimensions=full.dimensions)
    city = City.synthetic(seed=1, neighbourhoods=30, streets=3, population=60_000)
    return AlertManager(cat, city, store=os.path.join(tmp_path, "a.sqlite"),
                        config=AlertConfig(alert_per="indicator", **cfg)), city


def _day(rng, n_ind, n_cycles=24):
    times = pd.date_range("2020-03-02 00:15", periods=n_cycles, freq="15min")
    scores = rng.random((n_cycles, n_ind, 30)).astype(np.float32)
    dets = np.full(scores.shape, SEASONAL, np.int8)
    values = rng.random(scores.shape).astype(np.float32)
    return times, scores, dets, values


def test_alert_day_planted_incident_alerts_and_clean_day_stays_quiet(tmp_path):
    from engine.scenario.runner import _alert_day

    rng = np.random.default_rng(11)
    n_ind = 120
    times, scores, dets, values = _day(rng, n_ind)
    clean = scores.copy()
    # a strong lone anomaly (tail 1e-7 for 6 cycles) and a catalog threshold crossing at warn
    scores[8:14, 5, 7] = np.float32(1 - 1e-7)
    scores[4:10, 9, 12], dets[4:10, 9, 12] = WARN, THRESHOLD
    am, _ = _manager(tmp_path / "inc", n_ind)
    _alert_day(am, times, scores, dets, values, [])
    fired = {(a["indicator"], a["region"]): a for a in am.store.list_alerts()}
    ids = [i["id"] for i in am.router.indicators]
    assert set(fired) == {(ids[5], "N0008"), (ids[9], "N0013")}
    a = fired[(ids[5], "N0008")]
    assert pd.Timestamp(a["fired_at"]).tz_localize(None) == times[10]          # pending 3 cycles
    rows = [r for r in am.store.transitions() if r["alert_id"] == a["id"]]
    # audit trail: pending start then firing, with the detector and value given, adjusted score >= WARN
    assert [r["alert_state"] for r in rows[:2]] == ["pending", "firing"]
    assert rows[0]["detector"] == "seasonal" and rows[0]["value"] == pytest.approx(float(values[8, 5, 7]))
    assert rows[1]["score"] >= WARN
    t = [r for r in am.store.transitions() if r["alert_id"] == fired[(ids[9], "N0013")]["id"]]
    assert t[0]["detector"] == "threshold" and t[0]["score"] == pytest.approx(WARN)   # operator rule, unchanged
    am.close()

    # the same day without the planted cases: ~1 % of series cross WARN each cycle, none alerts
    am, _ = _manager(tmp_path / "clean", n_ind)
    _alert_day(am, times, clean, np.full(clean.shape, SEASONAL, np.int8), values, [])
    assert am.store.list_alerts() == []
    assert int((clean >= WARN).sum()) > 500
    am.close()
    # a moderate tail (1e-3, held 6 cycles) alerts per series, not across the family of 3,720 tests
    weak = clean.copy()
    weak[8:14, 5, 7] = np.float32(0.999)
    for multiplicity, expect in (("none", 1), ("bonferroni", 0)):
        am, _ = _manager(tmp_path / multiplicity, n_ind, multiplicity=multiplicity, looks=1.0)
        _alert_day(am, times, weak, np.full(clean.shape, SEASONAL, np.int8), values, [])
        assert len([a for a in am.store.list_alerts() if a["region"] == "N0008"]) == expect
        am.close()

"""Planted anomalies: the right detector fires within a stated number of cycles; clean data stays quiet.

Stated false-alarm rates (clean synthetic data, after warm-up, per series-cycle):
score >= WARN at most 0.5 % (normal and daily-seasonal series) and 1 % (Poisson counts, two-sided),
score >= CRITICAL at most 0.1 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.detect import Detectors
from engine.levels import CRITICAL, WARN

T0 = np.datetime64("2024-01-01T00:00")   # a Monday
H = np.timedelta64(1, "h")


def _ring(n):
    indptr = np.arange(0, 2 * n + 1, 2)
    indices = np.array([[(r - 1) % n, (r + 1) % n] for r in range(n)]).ravel()
    return indptr, indices


def _det(direction="up_bad", seasonality="none", count=False, n_reg=8, **kw):
    return Detectors.from_spec(direction=[direction], seasonality=[seasonality], count=[count], n_reg=n_reg,
                               adjacency=_ring(n_reg), cycle="1h", warmup=24, **kw)


def _series(rng, n_t, n_reg, seasonal=False):
    t = np.arange(n_t)
    base = 50 + (10 * np.sin(2 * np.pi * t / 24) if seasonal else np.zeros(n_t))
    return base[:, None] + rng.normal(size=(n_t, n_reg))


def _run(det, V):
    times = T0 + np.arange(V.shape[0]) * H
    return det.run(V[:, None, :], times)


def test_spike_fires_seasonal_detector_at_once():
    rng = np.random.default_rng(1)
    V = _series(rng, 300, 8)
    V[250, 3] += 12
    s, d = _run(_det(), V)
    assert s[250, 0, 3] >= CRITICAL and d[250, 0, 3] == 1


def test_level_shift_fires_within_3_cycles():
    rng = np.random.default_rng(2)
    V = _series(rng, 300, 8)
    V[250:, 2] += 4
    s, d = _run(_det(), V)
    hit = np.flatnonzero(s[250:, 0, 2] >= WARN)
    assert hit.size and hit[0] <= 2


def test_slow_drift_fires_cusum_within_40_cycles():
    rng = np.random.default_rng(3)
    V = _series(rng, 400, 8)
    V[250:, 5] += 0.05 * np.arange(150)            # 0.05 sigma per cycle
    s, d = _run(_det(), V)
    hit = np.flatnonzero(s[250:, 0, 5] >= WARN)
    assert hit.size and hit[0] <= 40
    assert d[250 + hit[0], 0, 5] == 3               # the CUSUM sees it first
    assert (s[250:250 + hit[0], 0, 5] < WARN).all()


def test_count_burst_in_low_rate_series():
    rng = np.random.default_rng(4)
    V = rng.poisson(0.3, size=(500, 8)).astype(float)
    V[400, 6] = 5
    s, d = _run(_det(count=True), V)
    assert s[400, 0, 6] >= CRITICAL and d[400, 0, 6] == 2


def test_three_neighbourhood_cluster_found_by_scan_only():
    from engine.city import City

    city = City.synthetic(seed=7, neighbourhoods=60, streets=5, population=200_000)
    n = 60
    det = Detectors.from_spec(direction=["up_bad"], seasonality=["none"], count=[True], n_reg=n, cluster=[True],
                              adjacency=(city.adj_indptr, city.adj_indices),
                              xy=(city.regions.x_m.to_numpy(), city.regions.y_m.to_numpy()), cycle="1h",
                              warmup=24, scan_replicas=199)
    rng = np.random.default_rng(7)
    V = rng.poisson(1.0, size=(300, 1, n)).astype(float)
    zone = det.zones[10, :3]
    V[297:, 0, zone] += 2                            # +2 a cycle in 3 neighbours for 3 cycles
    s, d, ex = det.run(V, T0 + np.arange(300) * H, extra=True)
    single = s[297:, 0, zone]
    found = [c for c in ex["clusters"][299] if set(c["region_index"]) & set(zone.tolist())]
    assert found and found[0]["p_value"] <= 0.01
    assert (d[297:, 0, zone] == 6).any()
    assert (s[299, 0, zone] >= WARN).all()
    # most single series in the cluster were not critical on their own
    assert (single < CRITICAL).mean() > 0.5 or (d[297:, 0, zone] == 6).sum() >= 2


def test_seasonal_pattern_and_holiday_do_not_alarm():
    rng = np.random.default_rng(5)
    n_t = 24 * 7 * 5
    t = np.arange(n_t)
    daily = 20 * np.sin(2 * np.pi * t / 24) + 10 * ((t // 24) % 7 >= 5)     # weekday / weekend profile
    V = 100 + daily[:, None] * np.linspace(0.5, 1.5, 8) + rng.normal(size=(n_t, 8))
    holiday = slice(24 * 7 * 3 + 48, 24 * 7 * 3 + 72)                          # a Wednesday in week 4
    V[holiday] = 100 + rng.normal(size=(24, 8))
    s, d = _run(_det(direction="both", seasonality="weekly"), V)
    after = s[24 * 7 * 3 + 72:, 0]                                            # the weeks after the holiday
    assert np.nanmean(after >= WARN) < 0.01
    assert np.nanmax(s[24 * 7:24 * 7 * 3, 0]) < CRITICAL or np.nanmean(s[24 * 7:24 * 7 * 3, 0] >= WARN) < 0.01


@pytest.mark.parametrize("kind", ["normal", "seasonal", "poisson"])
def test_false_alarm_rate_on_clean_data(kind):
    rng = np.random.default_rng(6)
    n_t, n_reg = 24 * 7 * 3, 40
    if kind == "poisson":
        V = rng.poisson(2.0, size=(n_t, n_reg)).astype(float)
        det = _det(count=True, n_reg=n_reg, direction="both")
    else:
        V = _series(rng, n_t, n_reg, seasonal=kind == "seasonal")
        det = _det(n_reg=n_reg, direction="both", seasonality="daily" if kind == "seasonal" else "none")
    s, d = _run(det, V)
    post = s[24 * 2:, 0]
    assert np.isfinite(post).all()
    assert (post >= WARN).mean() <= (0.01 if kind == "poisson" else 0.005)
    assert (post >= CRITICAL).mean() <= 0.001


def test_direction_awareness():
    rng = np.random.default_rng(8)
    V = _series(rng, 300, 8)
    V[250, 1] -= 12
    V[250, 2] += 12
    up = _run(_det(direction="up_bad"), V)[0][250, 0]
    down = _run(_det(direction="down_bad"), V)[0][250, 0]
    both = _run(_det(direction="both"), V)[0][250, 0]
    assert up[1] < 0.5 and up[2] >= CRITICAL
    assert down[1] >= CRITICAL and down[2] < 0.5
    assert both[1] >= CRITICAL and both[2] >= CRITICAL


def test_thresholds_fire_even_in_warm_up():
    det = _det(direction="up_bad", thresholds=[{"warn": 60.0, "alarm": 70.0}])
    V = np.full((5, 8), 50.0)
    V[2, 0] = 65.0
    V[3, 0] = 75.0
    s, d = _run(det, V)
    assert np.isnan(s[1, 0, 1]) is False or s[1, 0, 1] == 0.0
    assert s[2, 0, 0] >= WARN and d[2, 0, 0] == 4
    assert s[3, 0, 0] >= CRITICAL and d[3, 0, 0] == 4


def test_spatial_outlier_against_common_shock():
    rng = np.random.default_rng(9)
    V = _series(rng, 300, 8)
    V[250] += 6                 # the whole area moves...
    V[250, 4] += 8              # ...one neighbourhood much more
    s, d = _run(_det(direction="both", spatial=True), V)
    assert s[250, 0, 4] >= CRITICAL
    from engine.detect.spatial import spatial_contrast
    assert d[250, 0, 4] in (1, 5)

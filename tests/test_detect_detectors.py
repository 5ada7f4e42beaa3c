"""``Detectors.update``: the Python around :func:`engine.detect.kernels.update_kernel`.

Small on purpose (CI time): one specialisation of ``update_kernel`` (the one every
``Detectors.update`` call uses), no ``run`` / ``learn`` (``run_kernel``), a few dozen rows.
"""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np
import pandas as pd
import pytest

from engine.detect import Detectors


def _detectors(n_ind=37, n_reg=12, city_rules=True):
    """Mixed rows: directions, seasonality, counts, catalog levels; a ring of regions (spatial pass on)."""
    rng = np.random.default_rng(3)
    direction = [("up_bad", "down_bad", "both")[k % 3] for k in range(n_ind)]
    season = [("none", "daily", "weekly", "none")[k % 4] for k in range(n_ind)]
    count = [k % 5 == 1 for k in range(n_ind)]
    thresholds = [{"warn": 11.0, "alarm": 13.0} if k % 7 == 3 else None for k in range(n_ind)]
    ring = np.arange(n_reg)
    indptr = np.arange(0, 2 * n_reg + 1, 2)
    indices = np.stack([(ring - 1) % n_reg, (ring + 1) % n_reg], axis=1).ravel()
    det = Detectors.from_spec(direction=direction, seasonality=season, count=count, thresholds=thresholds,
                              n_reg=n_reg, cycle="1h", adjacency=(indptr, indices), warmup_cycles=6,
                              city_rules=city_rules)
    v = (10 + rng.normal(size=(40, n_ind, n_reg))).astype(np.float32)
    v[:, np.array(count)] = rng.poisson(2.0, size=(40, sum(count), n_reg))
    v[rng.random(v.shape) < 0.2] = np.nan
    held = rng.random(v.shape) < 0.3                    # repeats of the last value (held feeds)
    for t in range(1, len(v)):
        v[t][held[t]] = v[t - 1][held[t]]
    return det, v


@pytest.mark.parametrize("city_rules", [False, True])
def test_update_same_bits_for_any_worker_count(monkeypatch, city_rules):
    """``update_kernel`` deals its chunks of rows to ``numba.get_num_threads()`` workers: scores, codes and
    every state array are the same bit for bit whatever the count (1, 2, 3, more workers than chunks)."""
    t0 = np.datetime64("2024-01-05T00:00")
    results = []
    for workers in (1, 2, 3, 64):
        monkeypatch.setattr(numba, "get_num_threads", lambda w=workers: w)
        det, v = _detectors(city_rules=city_rules)
        out = []
        for t in range(len(v)):
            s, c, _ = det.update(v[t], t0 + np.timedelta64(t, "h"))
            out.append((s.tobytes(), c.tobytes()))
        results.append((out, {k: a.tobytes() for k, a in det.state.arrays().items()}))
    scored = np.frombuffer(results[0][0][-1][0], dtype=np.float32)
    assert np.isfinite(scored).mean() > 0.3            # warm: much of the last cycle is scored
    for other in results[1:]:
        assert other[0] == results[0][0]
        assert other[1] == results[0][1]


@pytest.mark.parametrize("time", [
    np.datetime64("2024-03-01T05:30"), np.datetime64("2024-03-01"), np.datetime64("2024-03-01T05", "h"),
    np.datetime64("2024-03-01T05:30:07.25"), np.datetime64("2024-03-01T05:30:07.123456789"),
    np.datetime64("1970-01-01T01:00:00"), np.datetime64("2024-03-01T05:30:07", "us"),
    pd.Timestamp("2024-03-01 05:30"), pd.Timestamp("2024-03-01 05:30", tz="Europe/Paris"), "2024-03-01 05:30",
    dt.datetime(2024, 3, 1, 5, 30),
])
def test_numpy_times_equal_pandas_times(time):
    det, _ = _detectors(n_ind=2, n_reg=2)
    t1, c1 = det._cycles(time if isinstance(time, np.datetime64) else [time])
    t2, c2 = det._cycles([time], fast=False)
    assert t1.dtype == t2.dtype and t1.tobytes() == t2.tobytes()
    assert c1.dtype == c2.dtype and c1.tolist() == c2.tolist()


@pytest.mark.parametrize("time", [np.datetime64("NaT"), np.datetime64("NaT", "ns"), np.datetime64("3000-01-01"),
                                  np.datetime64("1969-12-31T23:59:59"), "not a time", None])
def test_numpy_time_errors_as_pandas(time):
    det, _ = _detectors(n_ind=2, n_reg=2)
    with pytest.raises(Exception) as want:
        det._cycles([time], fast=False)
    with pytest.raises(type(want.value)) as got:
        det._cycles(time if isinstance(time, np.datetime64) else [time])
    assert str(got.value) == str(want.value)


def test_update_refuses_a_time_not_after_the_last():
    det, v = _detectors(n_ind=2, n_reg=2)
    t = np.datetime64("2024-03-01T05:00")
    det.update(v[0], t)
    with pytest.raises(ValueError, match=r"time 2024-03-01T05:59:00.000000000 is not after the last cycle scored"):
        det.update(v[1], t + np.timedelta64(59, "m"))
    with pytest.raises(ValueError, match="got NaT"):
        det.update(v[1], np.datetime64("NaT", "ns"))

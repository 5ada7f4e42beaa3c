"""The run's stored-period kernel (engine/scenario/store.py) against tests/scenario_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

import scenario_reference as ref
from engine.scenario.store import period_mean_max


@pytest.mark.parametrize("seed,factor,n_t,dtype", [(0, 4, 96, np.float32), (1, 3, 10, np.float64), (2, 1, 5, np.float32),
                                                   (3, 4, 3, np.float32)])
def test_period_mean_max_matches_reference(seed, factor, n_t, dtype):
    rng = np.random.default_rng(seed)
    v = rng.normal(10, 3, size=(n_t, 7, 5)).astype(dtype)
    s = rng.uniform(0, 1, size=(n_t, 7, 5)).astype(np.float32)
    v[rng.uniform(size=v.shape) < 0.3] = np.nan
    s[rng.uniform(size=s.shape) < 0.3] = np.nan
    v[:factor, 0, 0] = np.nan                                  # a period with no data at all
    s[:factor, 0, 0] = np.nan
    mean, top = period_mean_max(v, s, factor)
    want_mean, want_top = ref.period_mean_max(v, s, factor)
    assert mean.shape == (n_t // factor, 7, 5) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    np.testing.assert_array_equal(top, want_top)
    if len(mean):
        assert np.isnan(mean[0, 0, 0]) and np.isnan(top[0, 0, 0])


def test_period_mean_max_rejects_bad_input():
    with pytest.raises(ValueError, match="factor must be a whole number >= 1, got 0"):
        period_mean_max(np.zeros((4, 1, 1)), np.zeros((4, 1, 1)), 0)
    with pytest.raises(ValueError, match=r"\(4, 1, 1\) and \(4, 2, 1\)"):
        period_mean_max(np.zeros((4, 1, 1)), np.zeros((4, 2, 1)), 2)

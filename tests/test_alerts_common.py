"""The common-mode split of neighbourhood scores (engine/alerts/common.py)."""

import numpy as np
import pytest

from alerts_reference import common_mode_reference
from engine.alerts.common import common_mode
from engine.alerts.config import AlertConfig
from engine.levels import CRITICAL, DETECTOR_CODES, WARN

SEASONAL, THRESHOLD = DETECTOR_CODES["seasonal"], DETECTOR_CODES["threshold"]


def test_district_shift_goes_to_the_district():
    s = np.full((1, 30), 0.9995, np.float32)  # every neighbourhood at CRITICAL
    s[0, 3] = 0.9999                           # one a little further out: still the common shift
    local, dist, ddet, dval = common_mode(s, np.full(s.shape, SEASONAL, np.int8), np.arange(30.0)[None, :])
    assert dist[0, 0] >= WARN
    assert local.max() < WARN
    assert ddet[0, 0] == SEASONAL
    assert dval[0, 0] == 0.0  # the value of the (first) neighbourhood at the median


def test_lone_outlier_is_kept_and_null_rows_are_unchanged():
    rng = np.random.default_rng(1)
    s = rng.random((200, 30)).astype(np.float32)
    s[0, 7] = 0.99999
    local, dist, _, _ = common_mode(s, np.full(s.shape, SEASONAL, np.int8))
    assert local[0, 7] >= CRITICAL
    assert np.nanmax(dist) < WARN
    # under the null the median tail is ~0.5: the split never makes a series more abnormal
    assert np.all(local <= s + 1e-6)
    hi = s > 0.9
    assert np.all(1 - local[hi] <= 2 * (1 - s[hi]) + 1e-6)  # a high score's tail at most doubles


def test_looks_is_a_bonferroni_factor_except_for_catalog_thresholds():
    s = np.full((2, 6), 0.2, np.float32)
    s[:, 0] = 0.995
    det = np.full(s.shape, SEASONAL, np.int8)
    det[1, 0] = THRESHOLD
    local, _, _, _ = common_mode(s, det, looks=10)
    assert local[0, 0] == pytest.approx(0.95, abs=1e-5)   # tail 0.005 * 10
    assert local[1, 0] == pytest.approx(0.995, abs=1e-6)  # a catalog threshold keeps its level


def test_few_regions_and_nan():
    s = np.array([[np.nan, 0.999, 0.5]], np.float32)
    local, dist, _, _ = common_mode(s, looks=1)
    assert np.isnan(dist[0, 0]) and np.isnan(local[0, 0]) and local[0, 1] == pytest.approx(0.999)


def test_config_looks():
    assert AlertConfig().looks == 4.0
    with pytest.raises(ValueError, match="looks"):
        AlertConfig(looks=0.5)


@pytest.mark.parametrize("seed", range(4))
def test_kernel_equals_reference_on_random_rows(seed):
    rng = np.random.default_rng(seed)
    n_ind, n_reg = 60, 30
    s = rng.random((n_ind, n_reg))
    shift = rng.random(n_ind) < 0.4                       # rows where most neighbourhoods move together
    s[shift] = 1.0 - rng.random((int(shift.sum()), n_reg)) * 10.0 ** -rng.integers(1, 5, (int(shift.sum()), 1))
    s[rng.random(s.shape) < 0.1] = np.nan
    s[:3, 4:] = np.nan                                    # rows below min_regions
    s = s.astype(np.float32)
    det = rng.choice([SEASONAL, THRESHOLD, DETECTOR_CODES["cusum"]], size=s.shape).astype(np.int8)
    val = rng.normal(size=s.shape).astype(np.float32)
    local, dist, ddet, dval = common_mode(s, det, val, looks=10)
    want = common_mode_reference(s, det, val, 5, 10.0, THRESHOLD)
    np.testing.assert_allclose(local, want[0], atol=2e-6, equal_nan=True)
    np.testing.assert_allclose(dist[:, 0], want[1], atol=2e-6, equal_nan=True)
    assert np.array_equal(ddet[:, 0], want[2])
    np.testing.assert_array_equal(dval[:, 0], want[3].astype(np.float32))

"""Step detection (engine.bench.trend) against slow, obvious references on random inputs."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bench.trend import (
    Segment,
    cost_table,
    detect_steps,
    noise_sigma,
    optimal_partition,
    partition_objective,
    robust_sigma,
    segment_cost,
    step_test,
)


# ----------------------------------------------------------------------------- references

def ref_segment_cost(values) -> float:
    """Cost about the best constant, found by trying every data point (L1 optimum is one)."""
    values = [float(v) for v in values]
    return min(sum(abs(v - c) for v in values) for c in values)


def ref_best_partition(y, gamma):
    """Brute force over all 2^(n-1) ways to cut y into segments."""
    n = len(y)
    best = (math.inf, None)
    for mask in range(2 ** (n - 1)):
        cuts = [k for k in range(1, n) if mask >> (k - 1) & 1]
        bounds = [0, *cuts, n]
        obj = sum(ref_segment_cost(y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])) + gamma * (len(bounds) - 1)
        if obj < best[0] - 1e-12:
            best = (obj, bounds)
    return best


def ref_best_single_split(y):
    """The cut k minimising cost(y[:k]) + cost(y[k:])."""
    costs = [ref_segment_cost(y[:k]) + ref_segment_cost(y[k:]) for k in range(1, len(y))]
    return 1 + int(np.argmin(costs))


def ref_robust_sigma(x):
    if len(x) < 2:
        return 0.0
    m = statistics.median(x)
    return 1.4826 * statistics.median([abs(v - m) for v in x])


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("seed", range(6))
def test_cost_table_equals_segment_by_segment(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    y = rng.normal(size=n).round(int(rng.integers(0, 3)))  # rounding makes ties
    C = cost_table(y)
    for i in range(n):
        for j in range(i + 1, n + 1):
            assert C[i, j] == pytest.approx(ref_segment_cost(y[i:j]), abs=1e-9)
            assert C[i, j] == pytest.approx(segment_cost(y[i:j]), abs=1e-9)
    assert np.isnan(C[np.tril_indices(n)]).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 2)), min_size=1, max_size=9),
       st.floats(0.0, 2.0))
def test_optimal_partition_matches_brute_force(y, gamma):
    bounds = optimal_partition(y, gamma)
    assert bounds[0] == 0 and bounds[-1] == len(y) and all(a < b for a, b in zip(bounds, bounds[1:]))
    ref_obj, _ = ref_best_partition(y, gamma)
    assert partition_objective(y, bounds, gamma) == pytest.approx(ref_obj, abs=1e-9)


def test_optimal_partition_rejects_bad_gamma():
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0, got -1"):
        optimal_partition([1.0, 2.0], -1)


@pytest.mark.parametrize("seed", range(5))
def test_robust_and_noise_sigma_match_references(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.05, int(rng.integers(1, 30)))
    spreads = rng.uniform(0, 0.03, y.size)
    assert robust_sigma(y) == pytest.approx(ref_robust_sigma(list(y)), abs=1e-12)
    ref = max([0.005, statistics.median(spreads)]
              + ([1.4826 * statistics.median(abs(d) for d in np.diff(y)) / math.sqrt(2)] if y.size >= 4 else []))
    assert noise_sigma(y, spreads) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_single_planted_step_found_where_brute_force_puts_it(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(4, 16))
    k = int(rng.integers(1, n))  # first point of the new level
    factor = float(rng.choice([1.25, 1.4, 2.0, 0.7, 0.5]))
    med = 0.02 * (1 + rng.uniform(-0.02, 0.02, n))
    med[k:] *= factor
    trend = detect_steps(med, np.full(n, 0.01))
    assert [s.index for s in trend.steps] == [k] == [ref_best_single_split(np.log(med))]
    step = trend.steps[0]
    assert step.kind == ("regression" if factor > 1 else "improvement")
    assert step.ratio == pytest.approx(factor, rel=0.05)
    assert trend.latest_step is step


@pytest.mark.parametrize("seed", range(20))
def test_three_percent_wobble_is_never_a_step(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    med = 0.05 * (1 + 0.03 * rng.uniform(-1, 1, n))
    assert detect_steps(med, rng.uniform(0.002, 0.02, n)).steps == []


@pytest.mark.parametrize("seed", range(8))
def test_every_reported_step_passes_the_test_and_segments_are_the_plain_medians(seed):
    rng = np.random.default_rng(seed)
    n = 30
    levels = np.repeat(rng.choice([1.0, 1.3, 0.8, 1.6], 3), 10)
    med = levels * (1 + rng.normal(0, 0.02, n))
    spreads = rng.uniform(0.005, 0.02, n)
    trend = detect_steps(med, spreads)
    y = np.log(med)
    assert trend.segments[0].start == 0 and trend.segments[-1].stop == n
    for a, b in zip(trend.segments, trend.segments[1:]):
        assert a.stop == b.start
    for s in trend.segments:  # level and noise recomputed the obvious way
        part = y[s.start:s.stop]
        assert s.level == pytest.approx(statistics.median(part), abs=1e-12)
        assert s.sigma == pytest.approx(max(ref_robust_sigma(list(part)), statistics.median(spreads[s.start:s.stop]),
                                            0.005), abs=1e-12)
    for step in trend.steps:
        ok, z, _ = step_test(step.before, step.after, threshold=0.10, z=3.0)
        delta = abs(step.after.level - step.before.level)
        assert ok and delta >= math.log1p(0.10) and delta >= 3.0 * math.hypot(step.before.sigma, step.after.sigma)
        assert step.z == pytest.approx(z)
    # the true level changes of at least 25 % are all found
    true_changes = [i for i in range(1, n) if abs(math.log(levels[i] / levels[i - 1])) > math.log(1.25)]
    assert set(true_changes) <= {s.index for s in trend.steps}


def test_noise_inside_the_runs_hides_a_step_it_could_explain():
    med = np.array([1.0, 1.01, 0.99, 1.0, 1.3])
    assert [s.index for s in detect_steps(med, np.full(5, 0.01)).steps] == [4]
    assert detect_steps(med, np.full(5, 0.15)).steps == []  # IQR of ~20 %: 30 % is not 3 sigma


def test_step_test_thresholds():
    a = Segment(0, 5, 0.0, 0.001)
    assert not step_test(a, Segment(5, 6, math.log(1.05), 0.001), threshold=0.10, z=3.0)[0]  # too small
    assert step_test(a, Segment(5, 6, math.log(1.12), 0.001), threshold=0.10, z=3.0)[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(medians=[1.0, -2.0]), r"medians must be finite and > 0; medians\[1\] = -2.0"),
    (dict(medians=[1.0, float("nan")]), r"medians\[1\] = nan"),
    (dict(medians=[1.0, 2.0], spreads=[0.1]), "one value per median"),
    (dict(medians=[1.0, 2.0], threshold=0), "threshold must be a finite number > 0, got 0"),
    (dict(medians=[[1.0]]), "one-dimensional"),
])
def test_detect_steps_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        detect_steps(**kwargs)


def test_empty_and_single_point_histories():
    assert detect_steps([]).segments == []
    t = detect_steps([0.5])
    assert t.steps == [] and t.levels().tolist() == [0.5]


def test_brute_force_reference_is_itself_right():
    assert ref_best_partition([0, 0, 5, 5], 1.0)[1] == [0, 2, 4]
    assert list(itertools.islice(iter(ref_best_partition([1, 1, 1], 1.0)[1]), 3)) == [0, 3]

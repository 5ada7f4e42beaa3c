"""engine/order_stats.py: quickselect and the median by selection against numpy's sort."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.order_stats import median_inplace, select_inplace


def _cases(rng, n_cases):
    for it in range(n_cases):
        n = int(rng.integers(1, 60))
        a = rng.integers(0, 5, n).astype(np.float64) if it % 2 else rng.random(n)   # ties, and none
        if it % 5 == 0:
            a = np.sort(a)[::-1].copy()                                          # sorted either way
        yield n, a, np.concatenate([a, rng.random(7)])                           # values past n ignored


def test_median_inplace_equals_numpy_median():
    rng = np.random.default_rng(0)
    for n, a, b in _cases(rng, 3000):
        assert median_inplace(b, n) == np.median(a)
        assert np.array_equal(np.sort(b[:n]), np.sort(a))                        # only reordered


def test_select_inplace_is_the_sorted_kth_and_partitions():
    rng = np.random.default_rng(1)
    for n, a, b in _cases(rng, 2000):
        k = int(rng.integers(0, n))
        tail = b[n:].copy()
        got = select_inplace(b, n, k)
        assert got == np.sort(a)[k]
        assert b[k] == got and (b[:k] <= got).all() and (b[k + 1:n] >= got).all()
        assert np.array_equal(np.sort(b[:n]), np.sort(a)) and np.array_equal(b[n:], tail)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=1, max_size=40))
def test_median_inplace_any_floats(xs):
    a = np.array(xs, dtype=np.float64)
    assert median_inplace(a.copy(), a.size) == np.median(a)

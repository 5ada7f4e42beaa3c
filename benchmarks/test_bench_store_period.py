"""A run's stored hourly steps of one part: ``period_mean_max`` at the demo's size.

Engine: :func:`engine.scenario.store.period_mean_max` of one part of a day (48 cycles x 2,926
indicators x 300 neighbourhoods, float32, 68 % of the values and half of the scores NaN) to its
12 hourly steps (factor 4: the mean value and the highest score, NaN skipped), on one numba thread
as on the run's side thread. Peer: numpy's ``nanmean`` / ``nanmax`` over the reshaped periods (the
reference of ``tests/scenario_reference.py``), which must give the same steps.

CI size (``--benchmark-disable``, one untimed run): 44 neighbourhoods instead of 300 (the kernel's
rows are (step, indicator) pairs, regions the inner loop; the same factor-4 path): both
assertions run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench

GROUP = "store-period-300"
SIZE = "48 cycles x 2926 indicators x 300 neighbourhoods to 12 hourly steps, float32"


@pytest.fixture(scope="module")
def part(ci_size):
    rng = np.random.default_rng(1)
    shape = (48, 2926, 44 if ci_size else 300)
    value = rng.random(shape, dtype=np.float32)
    value[rng.random(shape) < 0.68] = np.nan
    score = rng.random(shape, dtype=np.float32)
    score[rng.random(shape) < 0.5] = np.nan
    return value, score


def _peer(value, score):
    n, ni, nr = value.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # all-NaN periods: NaN, as the engine's
        mean = np.nanmean(value.reshape(n // 4, 4, ni, nr).astype(np.float64), axis=1).astype(np.float32)
        top = np.nanmax(score.reshape(n // 4, 4, ni, nr), axis=1)
    return mean, top


def test_store_period_engine(benchmark, part):
    import numba

    from engine.scenario.store import period_mean_max

    value, score = part
    out = (np.empty((12,) + value.shape[1:], np.float32), np.empty((12,) + value.shape[1:], np.float32))
    before = numba.get_num_threads()
    numba.set_num_threads(1)                                   # the run's side thread
    try:
        period_mean_max(value, score, 4, out=out)              # compile / warm caches
        engine_bench(benchmark, GROUP, bytes_touched=int(value.nbytes + score.nbytes + 2 * out[0].nbytes),
                     size=SIZE + ", one thread")
        benchmark(period_mean_max, value, score, 4, out=out)
    finally:
        numba.set_num_threads(before)
    assert_same(out, _peer(value, score), rtol=1e-6)


def test_store_period_numpy_peer(benchmark, part):
    from engine.scenario.store import period_mean_max

    value, score = part
    peer_bench(benchmark, GROUP, scale=1.0, size=SIZE)
    got = benchmark(_peer, value, score)
    assert_same(period_mean_max(value, score, 4), got, rtol=1e-6)

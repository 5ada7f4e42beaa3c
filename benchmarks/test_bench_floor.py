"""Floor group: the memory-bandwidth floor as a benchmark, so it shows in the trends.

``test_floor_parallel_copy`` (role ``floor``) is the copy the floor is measured with;
``test_floor_numpy_copy`` is its peer, a one-thread ``numpy.copyto``. Its floor ratio
should stay near 1 and its speed-up over numpy is what the cores add to bandwidth.
Under ``--benchmark-disable`` both run once on 8 MiB and must copy exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.floor import floor_nbytes, parallel_copy
from engine.bench.harness import assert_same, declare_benchmark, peer_bench

GROUP = "floor"
QUICK_BYTES = 8 * 2**20


@pytest.fixture(scope="module")
def source(request):
    bs = getattr(request.config, "_benchmarksession", None)
    timed = bs is not None and not (bs.disabled or bs.skip)
    nbytes = floor_nbytes() if timed else QUICK_BYTES
    src = np.arange(nbytes // 8, dtype=np.float64)
    yield src
    del src


def _size(src) -> str:
    return f"{src.nbytes / 2**20:.0f} MiB float64"


def test_floor_parallel_copy(benchmark, source):
    dst = np.zeros_like(source)
    declare_benchmark(benchmark, role="floor", group=GROUP, bytes_touched=2 * source.nbytes, size=_size(source))
    benchmark(parallel_copy, source, dst)
    assert_same(dst, source, rtol=0.0)


def test_floor_numpy_copy(benchmark, source):
    dst = np.zeros_like(source)
    peer_bench(benchmark, GROUP, scale=1.0, size=_size(source))
    benchmark(np.copyto, dst, source)
    engine_dst = np.zeros_like(source)
    parallel_copy(source, engine_dst)
    assert_same(engine_dst, dst, rtol=0.0)

"""The catalog kernels' row pass in the demo (docs/detect.md, "Row pass in the demo, 2026-11-29 (eighth
session)"): the spatial pass over a padded neighbour table against the CSR pass, bit for bit, and the run's
skip with its look-ahead quiet test against successive updates on the demo's shapes of feed.

The run itself (``Detectors.run`` in parts against ``Detectors.update`` cycle by cycle, every output and
state array byte for byte) is ``tests/test_detect_skip.py``'s; here the pieces that changed, on inputs the
skip test does not reach: adjacency of any degree (isolated regions, a hub), ``z`` of either dtype with
+-0, infinities and NaN, every direction and neighbour minimum, and scores that start NaN."""

from __future__ import annotations

import numpy as np
import pytest

from engine.detect.spatial import neighbour_table, spatial_pass, spatial_pass_table


def _graph(rng, n):
    """A random symmetric adjacency in CSR form, neighbours in a random order (isolated regions and a hub)."""
    a = rng.random((n, n)) < rng.uniform(0.02, 0.4)
    a = np.triu(a, 1)
    if n > 3:
        a[0, 1:] = rng.random(n - 1) < 0.9          # a hub
    a = a | a.T
    rows = [rng.permutation(np.flatnonzero(row)) for row in a]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows + [np.zeros(0, np.int64)]).astype(np.int64)
    return indptr, indices


def _z(rng, n, dtype, missing):
    z = (rng.standard_t(3, n) * rng.choice([0.5, 3.0, 20.0])).astype(dtype)
    special = rng.random(n) < 0.1
    z[special] = rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, 6.0, -6.0], dtype=dtype), int(special.sum()))
    z[rng.random(n) < missing] = np.nan
    return z


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spatial_pass_table_equals_the_csr_pass(seed, dtype):
    rng = np.random.default_rng(seed)
    for _ in range(12):
        n = int(rng.integers(2, 60))
        indptr, indices = _graph(rng, n)
        nbt = neighbour_table(indptr, indices, n)
        assert nbt.shape == (n, int(np.diff(indptr).max(initial=0)))
        sp = np.full((4, n + 1), np.nan)               # scratch left dirty, as the kernels reuse it
        for missing in (0.0, 0.2, 0.5, 0.7, 0.9, 1.0):
            z = _z(rng, n, dtype, missing)
            base = rng.random(n).astype(np.float32)
            base[rng.random(n) < 0.3] = np.nan
            for direction in (1, -1, 0):
                for min_nb in (1, 2, 4):
                    got, want = base.copy(), base.copy()
                    dg, dw = np.zeros(n, np.int8), np.zeros(n, np.int8)
                    spatial_pass_table(z, nbt, direction, min_nb, got, dg, 5, sp[0], sp[1], sp[2, :n], sp[3, :n])
                    spatial_pass(z, indptr, indices, direction, min_nb, want, dw, 5)
                    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
                    np.testing.assert_array_equal(dg, dw)


def test_neighbour_table_keeps_the_csr_order_and_pads_with_n():
    rng = np.random.default_rng(3)
    n = 40
    indptr, indices = _graph(rng, n)
    nbt = neighbour_table(indptr, indices, n)
    for r in range(n):
        k = indptr[r + 1] - indptr[r]
        assert nbt[r, :k].tolist() == indices[indptr[r]:indptr[r + 1]].tolist()
        assert (nbt[r, k:] == n).all()

"""Spatial batch of ``run_kernel``: the spatial scoring of flushes of eight cycles, 300 neighbourhoods.

A flush (docs/detect.md, "Spatial batch ..." sections) scores :data:`engine.detect.spatial.LANES` residual
rows of one indicator together and raises the scores into the cycles' score rows. Engine: the path
``run_kernel`` takes (:func:`spatial_lanes_in64` widened tables, :func:`spatial_score8w` with the tail in a
second pass, :func:`spatial_lanes_raise`: the scores transposed straight into the rows and raised). Peer: the
earlier path kept as the reference (:func:`spatial_lanes_in` float32 table, :func:`spatial_score8`,
:func:`spatial_lanes_out` into a scratch row per lane, :func:`spatial_raise` each). The same scores and codes
bit for bit (asserted). The data: ``City.synthetic(seed=0)``'s adjacency (300 neighbourhoods), residual rows
drawn t(4) with 5 % missing, the catalog's mix of directions (most rows one-sided), scores raised into rows
of old scores (a third missing). Under ``--benchmark-disable`` (CI) 24 flushes instead of 600: the same
branches (full flushes, all three directions, the last ``300 % 8`` regions) and the same assertion.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.config import njit
from engine.detect.spatial import (
    LANES, spatial_clip, spatial_lanes_in, spatial_lanes_in64, spatial_lanes_out, spatial_lanes_raise,
    spatial_raise, spatial_score8, spatial_score8w,
)

GROUP = "spatial-flush-300"
CODE = 5


@pytest.fixture(scope="module")
def problem(ci_size):
    from engine.city import City

    city = City.synthetic(seed=0)
    n = len(city.regions)
    k = 24 if ci_size else 600
    rng = np.random.default_rng(3)
    lanes = (rng.standard_t(4, (k, LANES, n)) * 1.5).astype(np.float32)
    lanes[rng.random(lanes.shape) < 0.05] = np.nan
    for f in range(k):
        for u in range(LANES):
            spatial_clip(lanes[f, u])
    dirs = rng.choice([1.0, -1.0, 0.0], k, p=[0.85, 0.1, 0.05])
    dirs[:3] = [1.0, -1.0, 0.0]
    old = rng.random((k, LANES, n)).astype(np.float32)
    old[rng.random(old.shape) < 0.33] = np.nan
    return dict(n=n, k=k, lanes=lanes, dirs=dirs, old=old, indptr=np.asarray(city.adj_indptr, np.int64),
                indices=np.asarray(city.adj_indices, np.int64), min_nb=2)


@njit
def _engine_flushes(lanes, dirs, indptr, indices, min_nb, score, det):
    """Every flush by ``run_kernel``'s path: tables, scoring, scores raised straight into the rows."""
    k, _, n = lanes.shape
    t64 = np.empty(LANES * n)
    m32 = np.empty(LANES * n, np.float32)
    acc8 = np.empty(LANES * n, np.float32)
    e8 = np.empty(LANES * n, np.float32)
    mm8 = np.empty(LANES * n, np.float32)
    lst = np.empty(n, np.int64)
    dirv = np.empty(LANES)
    rows = np.arange(LANES)
    sf = score.reshape(score.size)
    df = det.reshape(det.size)
    for f in range(k):
        dirv[:] = dirs[f]
        spatial_lanes_in64(lanes[f], t64, m32)
        spatial_score8w(t64, m32, dirv, indptr, indices, min_nb, acc8, e8, mm8, lst)
        spatial_lanes_raise(acc8, n, sf, df, rows, n, f * LANES * n, LANES, CODE)


@njit
def _peer_flushes(lanes, dirs, indptr, indices, min_nb, score, det):
    """Every flush by the reference path: float32 table, :func:`spatial_score8`, rows out, raise a lane."""
    k, _, n = lanes.shape
    zc8 = np.empty(LANES * n, np.float32)
    acc8 = np.empty(LANES * n, np.float32)
    sb = np.empty((LANES, n), np.float32)
    dirv = np.empty(LANES)
    for f in range(k):
        dirv[:] = dirs[f]
        spatial_lanes_in(lanes[f], zc8)
        spatial_score8(zc8, dirv, indptr, indices, min_nb, acc8)
        spatial_lanes_out(acc8, sb)
        for u in range(LANES):
            spatial_raise(sb[u], score[f, u], det[f, u], CODE)


def _run(fn, p):
    score = p["old"].copy()
    det = np.zeros(score.shape, np.int8)
    fn(p["lanes"], p["dirs"], p["indptr"], p["indices"], p["min_nb"], score, det)
    return score, det


def _size(p) -> str:
    return f"{p['k']} flushes x {LANES} lanes x {p['n']} regions"


def test_spatial_flush_engine(benchmark, problem):
    p = problem
    # read: the residual rows, the old scores and codes, the adjacency per flush; written: scores and codes
    nbytes = p["lanes"].nbytes + 2 * (p["old"].nbytes + p["old"].size) + p["k"] * (p["indptr"].nbytes + p["indices"].nbytes)
    engine_bench(benchmark, GROUP, bytes_touched=int(nbytes), size=_size(p))
    got = benchmark(_run, _engine_flushes, p)
    want = _run(_peer_flushes, p)
    assert_same(got[0].view(np.int32), want[0].view(np.int32), rtol=0.0)
    assert_same(got[1], want[1], rtol=0.0)
    assert np.count_nonzero(got[1] == CODE) > 0


def test_spatial_flush_peer(benchmark, problem):
    peer_bench(benchmark, GROUP, size=_size(problem))
    got = benchmark(_run, _peer_flushes, problem)
    want = _run(_engine_flushes, problem)
    assert_same(got[0].view(np.int32), want[0].view(np.int32), rtol=0.0)
    assert_same(got[1], want[1], rtol=0.0)

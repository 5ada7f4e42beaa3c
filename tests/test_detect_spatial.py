"""engine.detect.spatial: the fused spatial pass against a plain-Python reference on random rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.detect.seasonal import t_score
from engine.detect.spatial import (
    LANES, Z_CLIP, spatial_clip, spatial_contrast, spatial_lanes_in, spatial_lanes_in64, spatial_lanes_out,
    spatial_lanes_raise, spatial_pass, spatial_raise, spatial_score8, spatial_score8w, spatial_sparse,
)


def score32_reference(zr, nb, direction):
    """The spatial score written from its definition (module docstring of engine.detect.spatial): the
    clipped residual ``zr`` of a region against its neighbours' ``nb`` (clipped, with data, CSR order):
    ``e = m z - sum`` in float64, then every operation rounded to float32 (numpy float32 scalars), the
    t(4) tail of ``|d|`` (``d = e / sqrt(m (m + 1))``, ``w = |d| / sqrt(4 + d^2)``)."""
    f = np.float32
    a = 0.0
    for q in nb:
        a += float(f(q))                    # Python float: float64
    m = f(len(nb))
    e64 = float(f(zr)) * float(m) - a
    e = f(e64)
    w = f(abs(e)) / np.sqrt(f(f(f(4.0) * m) * f(m + f(1.0))) + f(e * e))
    omw = f(1.0) - w
    tail = f(f(f(0.5) * omw) * omw) * f(f(1.0) + f(f(0.5) * w))
    if direction == 1:
        return f(1.0) - tail if e64 > 0 else f(0.0)
    if direction == -1:
        return f(1.0) - tail if e64 < 0 else f(0.0)
    return f(1.0) - f(f(2.0) * tail)


def spatial_reference(z, indptr, indices, direction, min_nb, score, det, code):
    """The spatial outlier written from its definition: neighbours with data, clipped, the float32
    score of :func:`score32_reference`; raised where higher or NaN."""
    clip = lambda q: min(max(float(q), -Z_CLIP), Z_CLIP)  # noqa: E731
    for r in range(len(z)):
        if math.isnan(z[r]):
            continue
        nb = [clip(z[j]) for j in indices[indptr[r]:indptr[r + 1]] if not math.isnan(z[j])]
        if not nb or len(nb) < min_nb:
            continue
        s = score32_reference(clip(z[r]), nb, direction)
        if math.isnan(score[r]) or s > score[r]:
            score[r], det[r] = s, code


def _graph(rng, n):
    """A random symmetric adjacency in CSR form (some regions isolated)."""
    a = rng.random((n, n)) < rng.uniform(0.05, 0.5)
    a = np.triu(a, 1)
    a = a | a.T
    indptr = np.concatenate([[0], np.cumsum(a.sum(1))]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(row) for row in a] + [np.zeros(0, np.int64)]).astype(np.int64)
    return indptr, indices


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spatial_pass_equals_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    indptr, indices = _graph(rng, n)
    z = (rng.standard_t(3, n) * rng.choice([0.5, 3.0, 20.0])).astype(dtype)
    z[rng.random(n) < rng.uniform(0, 0.6)] = np.nan
    base = rng.random(n).astype(dtype)
    base[rng.random(n) < 0.3] = np.nan
    for direction in (1, -1, 0):
        for min_nb in (1, 2, 4):
            got, want = base.copy(), base.copy()
            dg, dw = np.zeros(n, np.int8), np.zeros(n, np.int8)
            spatial_pass(z, indptr, indices, direction, min_nb, got, dg, 5)
            spatial_reference(z, indptr, indices, direction, min_nb, want, dw, 5)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(dg, dw)


def test_spatial_contrast_matches_pass_on_a_hand_case():
    # region 3 departs from its three neighbours; the others' contrasts stay small
    z = np.array([0.0, 0.2, -0.1, 8.0])
    indptr = np.array([0, 3, 5, 7, 10])
    indices = np.array([1, 2, 3, 0, 3, 0, 3, 0, 1, 2])
    d = spatial_contrast(z, indptr, indices, 3, 2)
    assert d == pytest.approx((Z_CLIP - (0.0 + 0.2 - 0.1) / 3) / math.sqrt(1 + 1 / 3))
    s = np.zeros(4)
    code = np.zeros(4, np.int8)
    spatial_pass(z, indptr, indices, 1, 2, s, code, 5)
    assert code.tolist() == [0, 0, 0, 5] and s[3] == pytest.approx(t_score(d, 1))


@pytest.mark.parametrize("seed", range(4))
def test_spatial_pass_with_scratch_equals_reference_on_a_city_sized_row(seed):
    """The kernels' call (scratch passed, reused across rows) on 300 regions of ~6 neighbours, a
    third missing (the vector path), 80-90 % missing (the sparse path) or all missing, against the
    reference: bit for bit, every direction."""
    rng = np.random.default_rng(100 + seed)
    n = 300
    nb = [set() for _ in range(n)]
    for r in range(n):
        for j in rng.choice(n, 3, replace=False):
            if j != r:
                nb[r].add(int(j))
                nb[int(j)].add(r)
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in nb])]).astype(np.int64)
    indices = np.concatenate([sorted(s) for s in nb]).astype(np.int64)
    zc, w = np.empty(n, np.float32), np.empty(n, np.float32)
    acc, cnt = np.empty(n), np.empty(n)
    for missing in (0.0, 0.33, 0.6, 0.8, 0.9, 1.0):
        z = (rng.standard_t(4, n) * 2).astype(np.float32)
        z[rng.random(n) < missing] = np.nan
        base = rng.random(n).astype(np.float32)
        base[rng.random(n) < 0.3] = np.nan
        for direction in (1, -1, 0):
            got, want = base.copy(), base.copy()
            dg, dw = np.zeros(n, np.int8), np.zeros(n, np.int8)
            spatial_pass(z, indptr, indices, direction, 2, got, dg, 5, zc, w, acc, cnt)
            spatial_reference(z, indptr, indices, direction, 2, want, dw, 5)
            np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
            np.testing.assert_array_equal(dg, dw)


def _hub_graph(rng, n):
    """A random symmetric CSR adjacency with isolated regions and a few hubs (neighbours of many)."""
    a = rng.random((n, n)) < rng.uniform(0.02, 0.3)
    iso = rng.random(n) < 0.15
    a[iso, :] = False
    a[:, iso] = False
    for h in rng.choice(n, min(n, 2), replace=False):
        if not iso[h]:
            a[h, ~iso] = True
    a = np.triu(a, 1)
    a = a | a.T
    indptr = np.concatenate([[0], np.cumsum(a.sum(1))]).astype(np.int64)
    indices = np.concatenate([rng.permutation(np.flatnonzero(row)) for row in a]
                             + [np.zeros(0, np.int64)]).astype(np.int64)
    return indptr, indices


def _batch_rows(rng, n, n_rows):
    """Residual rows with missing fractions 0..1, +-0, +-inf, values at and beyond the clip."""
    rows = []
    for _ in range(n_rows):
        z = (rng.standard_t(3, n) * rng.choice([0.5, 3.0, 20.0])).astype(np.float32)
        special = np.array([0.0, -0.0, np.inf, -np.inf, Z_CLIP, -Z_CLIP, np.nextafter(Z_CLIP, 7), 1e30],
                           np.float32)
        pick = rng.random(n) < 0.2
        z[pick] = rng.choice(special, int(pick.sum()))
        z[rng.random(n) < rng.choice([0.0, 0.2, 0.5, 0.7, 0.95, 1.0])] = np.nan
        rows.append(z)
    return rows


@pytest.mark.parametrize("seed", range(16))
def test_spatial_batch_equals_spatial_pass(seed):
    """Eight rows at once, held as rows (the kernels' path: :func:`spatial_clip`, :func:`spatial_lanes_in`
    / :func:`spatial_lanes_out` transposes, :func:`spatial_score8` with per-lane directions,
    :func:`spatial_raise`; a sparse row by :func:`spatial_sparse`), with stale lanes beyond the used
    ones, against :func:`spatial_pass` row by row: bit for bit (every path computes the float32 score
    with the same operations in the same order; docs/detect.md, fifteenth session)."""
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(1, 60))
    indptr, indices = _hub_graph(rng, n)
    rows = _batch_rows(rng, n, LANES)
    dirv = rng.choice([1, -1, 0], LANES).astype(np.int64)
    for min_nb in (0, 1, 2, 4):
        n_lanes = int(rng.integers(1, LANES + 1))
        bases = []
        for lane in range(LANES):
            base = rng.random(n).astype(np.float32)
            base[rng.random(n) < 0.3] = np.nan
            base[rng.random(n) < 0.1] = 1.0
            bases.append(base)
        # the lanes as rows: clipped in place, 8 x 8 transposes in and out
        zb = rng.standard_normal((LANES, n)).astype(np.float32)      # stale lanes beyond n_lanes
        nvs = []
        for lane in range(n_lanes):
            zb[lane] = rows[lane]
            nvs.append(spatial_clip(zb[lane]))
        zt = np.full(LANES * n, 7.0, np.float32)
        spatial_lanes_in(zb, zt)
        np.testing.assert_array_equal(zt.view(np.int32), zb.T.ravel().view(np.int32))
        clipped = np.clip(np.stack(rows[:n_lanes]), -Z_CLIP, Z_CLIP)
        np.testing.assert_array_equal(zb[:n_lanes].view(np.int32), clipped.view(np.int32))
        acc8b = np.empty(LANES * n, np.float32)
        spatial_score8(zt, dirv.astype(np.float64), indptr, indices, min_nb, acc8b)
        sb = zt.reshape(LANES, n)                                     # as _score_lanes: the residuals' table
        spatial_lanes_out(acc8b, sb)
        np.testing.assert_array_equal(sb.view(np.int32), acc8b.reshape(n, LANES).T.view(np.int32))
        got3 = [b.copy() for b in bases]
        dg3 = [np.zeros(n, np.int8) for _ in bases]
        for lane in range(n_lanes):
            spatial_raise(sb[lane], got3[lane], dg3[lane], 5)
        for lane in range(n_lanes):
            want, dw = bases[lane].copy(), np.zeros(n, np.int8)
            spatial_pass(rows[lane], indptr, indices, int(dirv[lane]), min_nb, want, dw, 5)
            np.testing.assert_array_equal(got3[lane].view(np.int32), want.view(np.int32))
            np.testing.assert_array_equal(dg3[lane], dw)
            assert nvs[lane] == np.count_nonzero(~np.isnan(rows[lane]))
            # a sparse row by spatial_sparse on its clipped row
            got4, dg4 = bases[lane].copy(), np.zeros(n, np.int8)
            spatial_sparse(zb[lane], indptr, indices, int(dirv[lane]), min_nb, got4, dg4, 5)
            np.testing.assert_array_equal(got4.view(np.int32), want.view(np.int32))
            np.testing.assert_array_equal(dg4, dw)


@pytest.mark.parametrize("seed", range(16))
def test_spatial_score8_against_the_reference(seed):
    """:func:`spatial_score8`'s float32 scores against the score written from its definition
    (:func:`score32_reference`, Python float32 operations), every lane (integer and float directions),
    region and direction: the same regions scored (NaN elsewhere), the same bits; and against the
    float64 contrast and t(4) tail (:func:`spatial_contrast` arithmetic in Python float64,
    :func:`engine.detect.seasonal.t_score`): within 1e-6 (float32 arithmetic with the clip's bound on
    the cancellation in ``1 - w``; ~3e-7 seen)."""
    rng = np.random.default_rng(900 + seed)
    n = int(rng.integers(1, 60))
    indptr, indices = _hub_graph(rng, n)
    rows = _batch_rows(rng, n, LANES)
    dirv = rng.choice([1, -1, 0], LANES).astype(np.int64)
    zb = np.stack(rows)
    for lane in range(LANES):
        spatial_clip(zb[lane])
    zt = np.empty(LANES * n, np.float32)
    spatial_lanes_in(zb, zt)
    worst = 0.0
    for min_nb in (0, 1, 2, 4):
        acc8 = np.empty(LANES * n, np.float32)
        spatial_score8(zt, dirv.astype(np.float64) if min_nb % 2 else dirv, indptr, indices, min_nb, acc8)
        got = acc8.reshape(n, LANES)
        for lane in range(LANES):
            z = zb[lane]
            for r in range(n):
                nb = [float(z[j]) for j in indices[indptr[r]:indptr[r + 1]] if not math.isnan(z[j])]
                if math.isnan(z[r]) or not nb or len(nb) < min_nb:
                    assert math.isnan(got[r, lane])
                    continue
                want32 = score32_reference(float(z[r]), nb, int(dirv[lane]))
                assert got[r, lane].view(np.int32) == want32.view(np.int32), (r, lane, got[r, lane], want32)
                d = (float(z[r]) - sum(nb) / len(nb)) / math.sqrt(1 + 1 / len(nb))
                worst = max(worst, abs(float(got[r, lane]) - t_score(d, int(dirv[lane]))))
    assert worst <= 1e-6


def _tiny_rows(rng, n, n_rows):
    """Residual rows of the values where ``e``'s sign could be lost: float32 subnormals (the smallest,
    2^-149, and a few more), the smallest normal, +-0, values a hair apart and their sums (cancelling
    contrasts: ``e = 0`` exactly, or a few units of 2^-149), beside ordinary and clipped values."""
    tiny = np.array([2.0 ** -149, -(2.0 ** -149), 3 * 2.0 ** -149, 2.0 ** -126, -(2.0 ** -126), 1e-40, -1e-40,
                     0.0, -0.0, 1.0, np.nextafter(np.float32(1.0), np.float32(2.0)), 6.0, -6.0, 7.0], np.float32)
    rows = []
    for _ in range(n_rows):
        z = rng.choice(tiny, n).astype(np.float32)
        if rng.random() < 0.5:             # small multiples of the smallest subnormal
            pick = rng.random(n) < 0.5
            z[pick] = (np.float32(2.0 ** -149) * rng.integers(-3, 4, int(pick.sum()))).astype(np.float32)
        z[rng.random(n) < rng.choice([0.0, 0.2, 0.5])] = np.nan
        rows.append(z)
    return rows


def _widened_scores(zb, dirv, indptr, indices, min_nb):
    """:func:`spatial_lanes_in64` (tables checked against ``zb``) then :func:`spatial_score8w`."""
    n = zb.shape[1]
    t64 = np.full(LANES * n, 7.0)
    m32 = np.full(LANES * n, 7.0, np.float32)
    spatial_lanes_in64(zb, t64, m32)
    zt = zb.T.ravel()
    ok = ~np.isnan(zt)
    np.testing.assert_array_equal(m32, ok.astype(np.float32))
    np.testing.assert_array_equal(t64.view(np.int64), np.where(ok, zt.astype(np.float64), 0.0).view(np.int64))
    out = np.full(LANES * n, 7.0, np.float32)
    spatial_score8w(t64, m32, dirv, indptr, indices, min_nb, out)
    # the kernels' call: scratch passed (stale contents)
    out2 = np.full(LANES * n, -3.0, np.float32)
    spatial_score8w(t64, m32, dirv, indptr, indices, min_nb, out2, np.full(LANES * n, 5.0, np.float32),
                    np.full(LANES * n, 9.0, np.float32), np.full(n, 12345, np.int64))
    np.testing.assert_array_equal(out2.view(np.int32), out.view(np.int32))
    return out


@pytest.mark.parametrize("seed", range(16))
def test_spatial_score8w_equals_score8_and_reference(seed):
    """The widened tables' scoring (:func:`spatial_lanes_in64`, :func:`spatial_score8w`: float64 table
    +0.0 where missing and a 1 / 0 count table; the sign of ``e`` from its float32 rounding; the tail in a
    second pass over the regions with a lane that needs it, scratch allocated or passed) against
    :func:`spatial_score8` on the float32 table, bit for bit, and against :func:`score32_reference`
    region by region: on ordinary rows (+-0, +-inf, the clip, missing fractions 0..1; integer and float
    directions, mixed and all one-sided) and on rows of subnormal and cancelling values (``e`` 0 or a
    few units of 2^-149: the sign and the zero kept); region counts not a multiple of 8 included."""
    rng = np.random.default_rng(1300 + seed)
    n = int(rng.integers(1, 60))
    indptr, indices = _hub_graph(rng, n)
    if seed % 4 == 3:                      # int32 CSR arrays
        indptr, indices = indptr.astype(np.int32), indices.astype(np.int32)
    for rows in (_batch_rows(rng, n, LANES), _tiny_rows(rng, n, LANES)):
        zb = np.stack(rows)
        for lane in range(LANES):
            spatial_clip(zb[lane])
        zt = np.empty(LANES * n, np.float32)
        spatial_lanes_in(zb, zt)
        for dirv in (rng.choice([1, -1, 0], LANES).astype(np.int64), np.full(LANES, 1.0), np.full(LANES, -1.0),
                     np.zeros(LANES), rng.choice([1.0, -1.0, 0.0, 2.0], LANES)):
            for min_nb in (0, 1, 2, 4):
                want = np.empty(LANES * n, np.float32)
                spatial_score8(zt, dirv, indptr, indices, min_nb, want)
                got = _widened_scores(zb, dirv, indptr, indices, min_nb)
                np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
                g = got.reshape(n, LANES)
                for lane in range(LANES):
                    z = zb[lane]
                    for r in range(n):
                        nb = [float(z[j]) for j in indices[indptr[r]:indptr[r + 1]] if not math.isnan(z[j])]
                        if math.isnan(z[r]) or not nb or len(nb) < min_nb:
                            assert math.isnan(g[r, lane])
                            continue
                        w32 = score32_reference(float(z[r]), nb, int(dirv[lane]))
                        assert g[r, lane].view(np.int32) == w32.view(np.int32), (r, lane, g[r, lane], w32)


def test_spatial_score8w_on_a_city_sized_table():
    """300 regions of ~6 neighbours (a random symmetric graph, as the demo's), eight lanes a third
    missing: :func:`spatial_score8w` and :func:`spatial_score8` bit for bit, every direction."""
    rng = np.random.default_rng(77)
    n = 300
    nb = [set() for _ in range(n)]
    for r in range(n):
        for j in rng.choice(n, 3, replace=False):
            if j != r:
                nb[r].add(int(j))
                nb[int(j)].add(r)
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in nb])]).astype(np.int64)
    indices = np.concatenate([sorted(s) for s in nb]).astype(np.int64)
    zb = (rng.standard_t(4, (LANES, n)) * 2).astype(np.float32)
    zb[rng.random(zb.shape) < 0.33] = np.nan
    for lane in range(LANES):
        spatial_clip(zb[lane])
    zt = np.empty(LANES * n, np.float32)
    spatial_lanes_in(zb, zt)
    for d in (1.0, -1.0, 0.0):
        dirv = np.full(LANES, d)
        want = np.empty(LANES * n, np.float32)
        spatial_score8(zt, dirv, indptr, indices, 2, want)
        got = _widened_scores(zb, dirv, indptr, indices, 2)
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
        assert np.isfinite(got).sum() > n


@pytest.mark.parametrize("seed", range(12))
def test_spatial_lanes_raise_equals_lanes_out_then_raise(seed):
    """:func:`spatial_lanes_raise` (the scores transposed straight into the cycles' rows of one indicator
    and raised there) against :func:`spatial_lanes_out` into rows then :func:`spatial_raise` of each lane,
    and against the raise written plainly: full flushes and flushes of fewer lanes, region counts below 8
    and not a multiple of 8, scores and old scores with NaN, ties and +-0, int64 and int32 cycle lists;
    the entries of the cycles and indicators not in the flush untouched."""
    rng = np.random.default_rng(2100 + seed)
    n = int(rng.choice([1, 5, 8, 13, 37, 300]))
    n_t, n_ind = int(rng.integers(8, 20)), int(rng.integers(1, 4))
    i = int(rng.integers(0, n_ind))
    for nl in (LANES, int(rng.integers(1, LANES + 1))):
        grid = np.float32([0.0, -0.0, 0.25, 0.5, 1.0])
        acc8 = np.where(rng.random(LANES * n) < 0.5, rng.choice(grid, LANES * n), rng.random(LANES * n)).astype(np.float32)
        acc8[rng.random(LANES * n) < 0.3] = np.nan
        shp = (n_t, n_ind, n)
        score = np.where(rng.random(shp) < 0.5, rng.choice(grid, shp), rng.random(shp)).astype(np.float32)
        score[rng.random(score.shape) < 0.3] = np.nan
        det = rng.integers(0, 5, score.shape).astype(np.int8)
        cyc = np.sort(rng.choice(n_t, LANES, replace=False)).astype(np.int64)
        want_s, want_d = score.copy(), det.copy()
        sb = np.empty((LANES, n), np.float32)
        spatial_lanes_out(acc8, sb)
        for q in range(nl):
            spatial_raise(sb[q], want_s[cyc[q], i], want_d[cyc[q], i], 7)
        plain_s, plain_d = score.copy(), det.copy()
        for q in range(nl):
            for r in range(n):
                s, old = acc8[LANES * r + q], plain_s[cyc[q], i, r]
                if not math.isnan(s) and (math.isnan(old) or s > old):
                    plain_s[cyc[q], i, r], plain_d[cyc[q], i, r] = s, 7
        np.testing.assert_array_equal(want_s.view(np.int32), plain_s.view(np.int32))
        np.testing.assert_array_equal(want_d, plain_d)
        for rows in (cyc, cyc.astype(np.int32)):
            got_s, got_d = score.copy(), det.copy()
            spatial_lanes_raise(acc8, n, got_s.reshape(-1), got_d.reshape(-1), rows, n_ind * n, i * n, nl, 7)
            np.testing.assert_array_equal(got_s.view(np.int32), want_s.view(np.int32))
            np.testing.assert_array_equal(got_d, want_d)

"""Tests for engine.geometry: polygon measures, Voronoi tiling, shared edges, point location."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import geometry as geo


def reference_locate(px: float, py: float, xy: np.ndarray, offsets: np.ndarray) -> int:
    """Slow, obvious ray casting: the first polygon (by id) whose ring the point is inside."""
    for p in range(len(offsets) - 1):
        ring = xy[offsets[p] : offsets[p + 1]].tolist()
        inside = False
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i]
            xj, yj = ring[j]
            if (yi > py) != (yj > py):
                if px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                    inside = not inside
            j = i
        if inside:
            return p
    return -1


def flat(polys):
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in polys])]).astype(np.int64)
    return np.concatenate(polys).astype(np.float64), offsets


SQUARE = np.array([[0.0, 0.0], [1000.0, 0.0], [1000.0, 1000.0], [0.0, 1000.0]])


def random_cells(n: int, seed: int):
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(1.0, 999.0, (n, 2))
    return seeds, *geo.voronoi_cells(seeds, SQUARE)


# ----------------------------------------------------------------------------- measures


def test_areas_and_centroids_of_simple_shapes():
    tri = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    sq_cw = SQUARE[::-1]
    xy, off = flat([tri, SQUARE, sq_cw])
    np.testing.assert_allclose(geo.polygon_areas(xy, off), [6.0, 1e6, -1e6])
    np.testing.assert_allclose(geo.polygon_centroids(xy, off), [[4 / 3, 1.0], [500.0, 500.0], [500.0, 500.0]])


def test_areas_are_translation_invariant_far_from_origin():
    rng = np.random.default_rng(3)
    hull = geo.convex_hull(rng.normal(size=(50, 2)) * 100)
    a0 = geo.polygon_areas(hull, np.array([0, len(hull)]))[0]
    a1 = geo.polygon_areas(hull + 5e6, np.array([0, len(hull)]))[0]
    assert a0 > 0
    assert abs(a1 - a0) / a0 < 1e-10  # only the rounding of the shifted vertices remains
    c0 = geo.polygon_centroids(hull, np.array([0, len(hull)]))[0]
    c1 = geo.polygon_centroids(hull + 5e6, np.array([0, len(hull)]))[0]
    np.testing.assert_allclose(c1 - 5e6, c0, atol=1e-6)


def test_convex_hull_contains_all_points_and_is_ccw():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(300, 2))
    hull = geo.convex_hull(pts)
    assert geo.polygon_areas(hull, np.array([0, len(hull)]))[0] > 0
    assert geo.points_in_convex(pts, hull).all()
    assert geo.convex_simple_mask(hull, np.array([0, len(hull)]))[0]
    # every hull vertex is an input point
    assert all((np.abs(pts - v).sum(1) == 0).any() for v in hull)


def test_polygon_problem_cases():
    assert geo.polygon_problem(SQUARE) is None
    assert geo.polygon_problem(np.array([[0, 0], [2, 0], [2, 2], [1, 0.5], [0, 2]], dtype=float)) is None  # concave
    assert "cross" in geo.polygon_problem(np.array([[0, 0], [2, 2], [2, 0], [0, 1]], dtype=float))
    assert "distinct" in geo.polygon_problem(np.array([[0, 0], [1, 1]], dtype=float))
    assert "zero area" in geo.polygon_problem(np.array([[0, 0], [1, 1], [2, 2]], dtype=float))
    assert "repeated" in geo.polygon_problem(np.array([[0, 0], [1, 0], [1, 0], [0, 1]], dtype=float))
    assert "non-finite" in geo.polygon_problem(np.array([[0, 0], [1, np.nan], [0, 1]], dtype=float))
    # a spike folding back on itself
    spike = np.array([[0, 0], [2, 0], [2, 2], [2, 3], [2, 2], [0, 2]], dtype=float)
    assert geo.polygon_problem(spike) is not None
    # a redundant vertex on a straight side is fine
    assert geo.polygon_problem(np.array([[0, 0], [1, 0], [2, 0], [2, 2], [0, 2]], dtype=float)) is None
    # a detailed ring (thousands of vertices) is checked in batches
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    blob = np.column_stack([(1 + 0.1 * np.sin(7 * t)) * np.cos(t), (1 + 0.1 * np.sin(7 * t)) * np.sin(t)])
    assert geo.polygon_problem(blob) is None
    blob[2000] = [5.0, 0.0]  # a far spike crosses nothing but folds two edges across others
    assert "cross" in geo.polygon_problem(blob)


def test_convex_simple_mask():
    concave = np.array([[0, 0], [2, 0], [2, 2], [1, 0.5], [0, 2]], dtype=float)
    star = np.array([[np.cos(a), np.sin(a)] for a in np.arange(5) * 4 * np.pi / 5])  # pentagram, all left turns
    xy, off = flat([SQUARE, SQUARE[::-1], concave, star])
    assert geo.convex_simple_mask(xy, off).tolist() == [True, False, False, False]


# ----------------------------------------------------------------------------- Voronoi


def test_voronoi_cells_tile_the_square_and_are_convex_ccw():
    seeds, xy, off, nbr = random_cells(200, 0)
    areas = geo.polygon_areas(xy, off)
    assert (areas > 0).all()
    assert abs(areas.sum() - 1e6) / 1e6 < 1e-9
    assert geo.convex_simple_mask(xy, off).all()
    # the seed is inside its own cell
    for i in range(0, 200, 7):
        assert geo.points_in_convex(seeds[i : i + 1], xy[off[i] : off[i + 1]])[0]


def test_voronoi_cell_is_nearest_seed_region():
    seeds, xy, off, nbr = random_cells(150, 1)
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 1000, (2000, 2))
    cell = geo.locate_points(pts[:, 0], pts[:, 1], xy, off)
    d2 = ((pts[:, None, :] - seeds[None, :, :]) ** 2).sum(-1)
    nearest = np.argmin(d2, axis=1)
    # ties (points on a bisector within rounding) are measure-zero; require exact agreement
    assert (cell == nearest).all()


def test_voronoi_edge_labels_name_the_bisector():
    seeds, xy, off, nbr = random_cells(120, 4)
    nxt = geo._next_index(off)
    owner = np.repeat(np.arange(len(off) - 1), np.diff(off))
    inner = nbr >= 0
    for end in (np.arange(len(xy)), nxt):
        p = xy[end][inner]
        di = np.hypot(*(p - seeds[owner[inner]]).T)
        dj = np.hypot(*(p - seeds[nbr[inner]]).T)
        np.testing.assert_allclose(di, dj, rtol=0, atol=1e-6)
    # boundary edges lie on the square's sides
    b = xy[~inner]
    on_side = np.isclose(b[:, 0], 0) | np.isclose(b[:, 0], 1000) | np.isclose(b[:, 1], 0) | np.isclose(b[:, 1], 1000)
    assert on_side.all()
    # no edge shorter than the merge tolerance
    lengths = np.hypot(*(xy[nxt] - xy).T)
    assert lengths.min() >= geo.EDGE_TOL_M


def test_geometric_edge_matching_recovers_bisector_labels():
    seeds, xy, off, nbr = random_cells(300, 5)
    assert np.array_equal(geo.match_shared_edges(xy, off), nbr)
    indptr, indices = geo.adjacency_from_edges(nbr, off)
    a = np.repeat(np.arange(len(off) - 1), np.diff(indptr))
    pairs = set(zip(a.tolist(), indices.tolist()))
    assert all((j, i) in pairs for i, j in pairs)


def test_shared_edges_of_detailed_polygons():
    # two polygons sharing a zigzag border of 3000 edges, the right one with its border subdivided
    y = np.linspace(0.0, 1000.0, 3001)
    x = 500.0 + 20.0 * np.sin(y / 7.0)
    zig = np.column_stack([x, y])
    left = np.concatenate([[[0.0, 1000.0], [0.0, 0.0]], zig])  # CCW: down the west side, up the border
    right = np.concatenate([[[1000.0, 0.0], [1000.0, 1000.0]], zig[::-1]])
    xy, off = flat([left, right])
    assert (geo.polygon_areas(xy, off) > 0).all()
    lab = geo.match_shared_edges(xy, off)
    assert (lab[2:3002] == 1).all() and (lab[3005:3005 + 3000] == 0).all()
    assert lab[[0, 1, 3002, 3003]].tolist() == [-1, -1, -1, -1]
    indptr, indices = geo.adjacency_from_edges(lab, off)
    assert indices.tolist() == [1, 0]


def test_voronoi_degenerate_inputs():
    xy, off, nbr = geo.voronoi_cells(np.array([[500.0, 500.0]]), SQUARE)
    assert off.tolist() == [0, 4] and nbr.tolist() == [-1] * 4
    # a regular lattice has 4 seeds on many circles: cells stay valid and tile exactly
    g = (np.arange(10) + 0.5) * 100
    seeds = np.array([[x, y] for x in g for y in g])
    xy, off, nbr = geo.voronoi_cells(seeds, SQUARE)
    areas = geo.polygon_areas(xy, off)
    np.testing.assert_allclose(areas, 1e4)
    assert set(np.diff(off).tolist()) == {4}
    indptr, _ = geo.adjacency_from_edges(nbr, off)
    assert sorted(set(np.diff(indptr).tolist())) == [2, 3, 4]  # no diagonal contacts


# ----------------------------------------------------------------------------- graph helpers


def test_csr_from_pairs_dedupes_and_sorts():
    indptr, indices = geo.csr_from_pairs(np.array([2, 0, 2, 1, 1]), np.array([0, 2, 0, 1, 2]), 3)
    assert indptr.tolist() == [0, 1, 2, 3]
    assert indices.tolist() == [2, 2, 0]


def test_kmeans_and_grow_regions_give_contiguous_groups():
    seeds, xy, off, nbr = random_cells(200, 6)
    cent = geo.polygon_centroids(xy, off)
    indptr, indices = geo.adjacency_from_edges(nbr, off)
    centres = geo.kmeans(cent, 8, np.random.default_rng(0))
    assert np.array_equal(centres, geo.kmeans(cent, 8, np.random.default_rng(0)))
    group = geo.grow_regions(cent, indptr, indices, centres)
    assert set(group.tolist()) == set(range(8))
    for g in range(8):
        members = set(np.flatnonzero(group == g).tolist())
        start = next(iter(members))
        seen, stack = {start}, [start]
        while stack:
            u = stack.pop()
            for v in indices[indptr[u] : indptr[u + 1]].tolist():
                if v in members and v not in seen:
                    seen.add(v)
                    stack.append(v)
        assert seen == members
    with pytest.raises(ValueError, match="k must be between 1 and the number of points"):
        geo.kmeans(cent, 0, np.random.default_rng(0))


def test_sample_in_polygons_stays_inside():
    seeds, xy, off, nbr = random_cells(50, 7)
    which = np.repeat(np.arange(50), 20)
    pts = geo.sample_in_polygons(np.random.default_rng(0), xy, off, which)
    got = geo.locate_points(pts[:, 0], pts[:, 1], xy, off)
    assert np.array_equal(got, which)


# ----------------------------------------------------------------------------- point location


def _star(cx, cy, r_out, r_in, k, rot):
    a = rot + np.arange(2 * k) * np.pi / k
    r = np.where(np.arange(2 * k) % 2 == 0, r_out, r_in)
    return np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)])


STARS = flat([
    _star(0, 0, 10, 4, 5, 0.1),
    _star(12, 3, 8, 3, 7, 0.5),
    _star(5, 12, 6, 5, 4, 0.0),
    _star(-8, 9, 9, 2, 6, 1.0),
    np.array([[-20.0, -20.0], [30.0, -20.0], [30.0, -12.0], [-20.0, -12.0]]),
])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-25, 35), st.floats(-25, 25)), min_size=1, max_size=40))
def test_locate_points_matches_reference_on_non_convex_polygons(points):
    xy, off = STARS
    px = np.array([p[0] for p in points])
    py = np.array([p[1] for p in points])
    got = geo.locate_points(px, py, xy, off)
    want = [reference_locate(x, y, xy, off) for x, y in zip(px.tolist(), py.tolist())]
    assert got.tolist() == want


def test_locate_points_nan_shape_and_errors():
    xy, off = STARS
    out = geo.locate_points(np.array([[0.0, np.nan], [100.0, 0.5]]), np.array([[0.0, 0.0], [0.0, np.nan]]), xy, off)
    assert out.shape == (2, 2)
    assert out.tolist() == [[0, -1], [-1, -1]]
    with pytest.raises(ValueError, match="same shape"):
        geo.locate_points([1.0, 2.0], [1.0], xy, off)


def test_bucket_index_covers_every_polygon_bbox():
    seeds, xy, off, nbr = random_cells(100, 8)
    idx = geo.BucketIndex.build(xy, off)
    for p in range(100):
        ring = xy[off[p] : off[p + 1]]
        lo, hi = ring.min(0), ring.max(0)
        for x, y in [(lo[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1]), (hi[0], lo[1])]:
            b = int((y - idx.y0) / idx.bh) * idx.nx + int((x - idx.x0) / idx.bw)
            assert p in idx.polys[idx.indptr[b] : idx.indptr[b + 1]]

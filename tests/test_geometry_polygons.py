"""Tests for engine.geometry.polygons: measures, hull, validity checks, sampling."""

from __future__ import annotations

import numpy as np

from engine import geometry as geo

from test_geometry_helpers import SQUARE, flat, random_cells


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


def test_sample_in_polygons_stays_inside():
    seeds, xy, off, nbr = random_cells(50, 7)
    which = np.repeat(np.arange(50), 20)
    pts = geo.sample_in_polygons(np.random.default_rng(0), xy, off, which)
    got = geo.locate_points(pts[:, 0], pts[:, 1], xy, off)
    assert np.array_equal(got, which)

"""Tests for engine.geometry.voronoi: the tiling, its edge labels, degenerate inputs."""

from __future__ import annotations

import numpy as np

from engine import geometry as geo

from test_geometry_helpers import SQUARE, random_cells


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

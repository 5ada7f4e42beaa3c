"""Tests for engine.geometry.graph and edges: shared-edge matching, CSR adjacency, k-means, region growing."""

from __future__ import annotations

import numpy as np
import pytest

from engine import geometry as geo

from test_geometry_helpers import flat, random_cells


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

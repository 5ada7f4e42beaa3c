"""Tests for engine.geometry.locate: point location against a reference, the bucket index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import geometry as geo

from test_geometry_helpers import flat, random_cells, reference_locate


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

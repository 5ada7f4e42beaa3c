"""Planar geometry for the city model: polygons, Voronoi tiling, adjacency, point location.

Everything works on metric coordinates (metres in the city's local projection). Polygons are
stored flat, the way the kernels want them: ``xy`` is a ``(total_vertices, 2)`` float64 array
and ``offsets`` an int64 array of length ``n + 1`` so that polygon ``i`` is
``xy[offsets[i]:offsets[i + 1]]`` (counter-clockwise, ring not closed). An optional int64
``edge_nbr`` array aligned with ``xy`` says, for the edge that starts at each vertex, which
polygon lies on the other side (``-1`` for the outer boundary).

The only hot loop is point location (:func:`locate_points`, a numba kernel over a coarse bucket
grid); the Voronoi construction is plain Python over small per-cell vertex lists.

Where things live:

- :mod:`~engine.geometry.polygons`: areas, centroids, convex hull, validity checks, sampling;
- :mod:`~engine.geometry.edges`: :data:`EDGE_TOL_M`, near-edge pairs, shared-edge matching;
- :mod:`~engine.geometry.voronoi`: the Voronoi tiling;
- :mod:`~engine.geometry.graph`: CSR adjacency, k-means, contiguous region growing;
- :mod:`~engine.geometry.locate`: :class:`BucketIndex`, :func:`locate_points` and its numba kernel.

>>> import numpy as np
>>> square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
>>> xy, off, nbr = voronoi_cells(np.array([[0.5, 1.0], [1.5, 1.0]]), square)
>>> polygon_areas(xy, off).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

# When engine.geometry was one module its imports were reachable as attributes
# (engine.geometry.np, ...); they stay reachable for old callers.
import heapq  # noqa: F401
import math  # noqa: F401
from dataclasses import dataclass  # noqa: F401

import numpy as np  # noqa: F401

from engine.config import njit  # noqa: F401

# Re-exports: every name ``engine.geometry`` offered when it was a single module still resolves
# here, private helpers included (tests import some of them).
from engine.geometry.edges import EDGE_TOL_M, _expand, _near_edge_pairs, _next_index, match_shared_edges
from engine.geometry.graph import adjacency_from_edges, csr_from_pairs, grow_regions, kmeans
from engine.geometry.locate import BucketIndex, _locate_kernel, locate_points
from engine.geometry.polygons import (
    _segment_sums,
    convex_hull,
    convex_simple_mask,
    points_in_convex,
    polygon_areas,
    polygon_centroids,
    polygon_problem,
    sample_in_polygons,
)
from engine.geometry.voronoi import _clip, _drop_short_edges, _SeedGrid, voronoi_cells

__all__ = [
    "EDGE_TOL_M",
    "BucketIndex",
    "adjacency_from_edges",
    "convex_hull",
    "convex_simple_mask",
    "csr_from_pairs",
    "kmeans",
    "grow_regions",
    "locate_points",
    "match_shared_edges",
    "points_in_convex",
    "polygon_areas",
    "polygon_centroids",
    "polygon_problem",
    "sample_in_polygons",
    "voronoi_cells",
]
